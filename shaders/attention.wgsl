// Attention (see attention_io.wgsl), one thread per (query row, head) walking all keys from
// global memory with a running max; no workgroup memory (what SwiftShader prefers). Keys go
// four at a time: four scores, one rescale of the running sum and five exponentials per four
// keys instead of two exponentials and a rescale per key. Head vectors are held as vec4s.
// Requires: const HEAD_DIM. Switch: HEAD_VEC4 (HEAD_DIM % 4 == 0: no tail lanes to mask).
#include "attention_io.wgsl"

const DV: u32 = (HEAD_DIM + 3u) / 4u;

// Four floats of a head vector starting at `base`, zero past HEAD_DIM.
#if HEAD_VEC4
fn loadQ(base: u32) -> vec4<f32> { return vec4<f32>(q[base], q[base + 1u], q[base + 2u], q[base + 3u]); }
fn loadK(base: u32) -> vec4<f32> { return vec4<f32>(k[base], k[base + 1u], k[base + 2u], k[base + 3u]); }
fn loadV(base: u32) -> vec4<f32> { return vec4<f32>(v[base], v[base + 1u], v[base + 2u], v[base + 3u]); }
#else
fn loadQ(base: u32, n: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < n; e++) { r[e] = q[base + e]; }
  return r;
}
fn loadK(base: u32, n: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < n; e++) { r[e] = k[base + e]; }
  return r;
}
fn loadV(base: u32, n: u32) -> vec4<f32> {
  var r = vec4<f32>(0.0);
  for (var e = 0u; e < n; e++) { r[e] = v[base + e]; }
  return r;
}
#endif

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.y;
  let i = gid.x / p.nHeads;
  let h = gid.x % p.nHeads;
  if (i >= seqRows(p.queryKind, b)) { return; }
  let nKeys = seqRows(CLEAN, b);
  let seq = b * dims.seqStride;
  let qBase = (seq + i) * p.qStride + p.qOffset + h * HEAD_DIM;
  let kHead = p.kOffset + h * HEAD_DIM;
  let vHead = p.vOffset + h * HEAD_DIM;
  var qv: array<vec4<f32>, DV>;
  var acc: array<vec4<f32>, DV>;
  for (var t = 0u; t < DV; t++) {
#if HEAD_VEC4
    qv[t] = loadQ(qBase + 4u * t) * p.scale;
#else
    qv[t] = loadQ(qBase + 4u * t, min(4u, HEAD_DIM - 4u * t)) * p.scale;
#endif
    acc[t] = vec4<f32>(0.0);
  }
  var runningMax = -3.0e38;
  var denom = 0.0;
  var j = 0u;
  for (; j + 4u <= nKeys; j += 4u) {
    let k0 = (seq + j) * p.kStride + kHead;
    var s = vec4<f32>(0.0);
    for (var t = 0u; t < DV; t++) {
      let at = k0 + 4u * t;
#if HEAD_VEC4
      s += vec4<f32>(dot(qv[t], loadK(at)), dot(qv[t], loadK(at + p.kStride)), dot(qv[t], loadK(at + 2u * p.kStride)), dot(qv[t], loadK(at + 3u * p.kStride)));
#else
      let n = min(4u, HEAD_DIM - 4u * t);
      s += vec4<f32>(dot(qv[t], loadK(at, n)), dot(qv[t], loadK(at + p.kStride, n)), dot(qv[t], loadK(at + 2u * p.kStride, n)), dot(qv[t], loadK(at + 3u * p.kStride, n)));
#endif
    }
    let newMax = max(runningMax, max(max(s.x, s.y), max(s.z, s.w)));
    let correction = exp(runningMax - newMax);
    let w = exp(s - vec4<f32>(newMax));
    denom = denom * correction + ((w.x + w.y) + (w.z + w.w));
    let v0 = (seq + j) * p.vStride + vHead;
    for (var t = 0u; t < DV; t++) {
      let at = v0 + 4u * t;
#if HEAD_VEC4
      acc[t] = acc[t] * correction + w.x * loadV(at) + w.y * loadV(at + p.vStride) + w.z * loadV(at + 2u * p.vStride) + w.w * loadV(at + 3u * p.vStride);
#else
      let n = min(4u, HEAD_DIM - 4u * t);
      acc[t] = acc[t] * correction + w.x * loadV(at, n) + w.y * loadV(at + p.vStride, n) + w.z * loadV(at + 2u * p.vStride, n) + w.w * loadV(at + 3u * p.vStride, n);
#endif
    }
    runningMax = newMax;
  }
  // The last nKeys % 4 keys, one at a time.
  for (; j < nKeys; j++) {
    let k0 = (seq + j) * p.kStride + kHead;
    var s = 0.0;
    for (var t = 0u; t < DV; t++) {
#if HEAD_VEC4
      s += dot(qv[t], loadK(k0 + 4u * t));
#else
      s += dot(qv[t], loadK(k0 + 4u * t, min(4u, HEAD_DIM - 4u * t)));
#endif
    }
    let newMax = max(runningMax, s);
    let correction = exp(runningMax - newMax);
    let w = exp(s - newMax);
    denom = denom * correction + w;
    let v0 = (seq + j) * p.vStride + vHead;
    for (var t = 0u; t < DV; t++) {
#if HEAD_VEC4
      acc[t] = acc[t] * correction + w * loadV(v0 + 4u * t);
#else
      acc[t] = acc[t] * correction + w * loadV(v0 + 4u * t, min(4u, HEAD_DIM - 4u * t));
#endif
    }
    runningMax = newMax;
  }
  let oBase = (seq + i) * p.nHeads * HEAD_DIM + h * HEAD_DIM;
  let inv = select(0.0, 1.0 / denom, denom > 0.0);
  for (var d = 0u; d < HEAD_DIM; d++) { out[oBase + d] = acc[d / 4u][d % 4u] * inv; }
}
