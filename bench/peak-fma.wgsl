// Multiply-add throughput: every invocation runs `iterations` rounds of 8 independent vec4
// multiply-adds (8 dependency chains hide the latency), 64 FLOPs per round. Written as
// `a * m + c`, not `fma()`: GPU compilers contract it to an FMA anyway, and SwiftShader
// runs WGSL's exact `fma()` at half the speed of a multiply and an add (measured).
// The multiplier and addend come from a uniform so the compiler cannot fold the loop;
// the sum is written so it cannot drop it.

struct Params {
  iterations: u32,
  mul: f32,
  add: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let id = gid.x + gid.y * groups.x * 64u;
  let s = f32(id & 1023u) * 1e-3;
  let m = vec4<f32>(p.mul);
  let c = vec4<f32>(p.add);
  var a0 = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
  var a1 = a0 + 1.0;
  var a2 = a0 + 2.0;
  var a3 = a0 + 3.0;
  var a4 = a0 + 4.0;
  var a5 = a0 + 5.0;
  var a6 = a0 + 6.0;
  var a7 = a0 + 7.0;
  for (var i = 0u; i < p.iterations; i++) {
    a0 = a0 * m + c;
    a1 = a1 * m + c;
    a2 = a2 * m + c;
    a3 = a3 * m + c;
    a4 = a4 * m + c;
    a5 = a5 * m + c;
    a6 = a6 * m + c;
    a7 = a7 * m + c;
  }
  out[id] = ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7));
}
