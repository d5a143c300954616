// Memory bandwidth: a grid-stride copy of `count` vec4s, scaled so the read cannot be
// skipped. Traffic = 2 * 16 * count bytes (one read, one write).

struct Params {
  count: u32,
  scale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let stride = groups.x * 64u;
  for (var i = gid.x; i < p.count; i += stride) {
    dst[i] = src[i] * p.scale;
  }
}
