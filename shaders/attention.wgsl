// Attention (see attention_io.wgsl), one thread per (query row, head) walking all keys from
// global memory with a running max; no workgroup memory (what SwiftShader prefers).
// Requires: const HEAD_DIM.
#include "attention_io.wgsl"

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.y;
  let i = gid.x / p.nHeads;
  let h = gid.x % p.nHeads;
  if (i >= seqRows(p.queryKind, b)) { return; }
  let nKeys = seqRows(CLEAN, b);
  let seq = b * dims.seqStride;
  let qBase = (seq + i) * p.qStride + p.qOffset + h * HEAD_DIM;
  var qv: array<f32, HEAD_DIM>;
  var acc: array<f32, HEAD_DIM>;
  for (var d = 0u; d < HEAD_DIM; d++) {
    qv[d] = q[qBase + d] * p.scale;
    acc[d] = 0.0;
  }
  var runningMax = -3.0e38;
  var denom = 0.0;
  for (var j = 0u; j < nKeys; j++) {
    let kBase = (seq + j) * p.kStride + p.kOffset + h * HEAD_DIM;
    var s = 0.0;
    for (var d = 0u; d < HEAD_DIM; d++) { s += qv[d] * k[kBase + d]; }
    let newMax = max(runningMax, s);
    let correction = exp(runningMax - newMax);
    let weight = exp(s - newMax);
    denom = denom * correction + weight;
    let vBase = (seq + j) * p.vStride + p.vOffset + h * HEAD_DIM;
    for (var d = 0u; d < HEAD_DIM; d++) { acc[d] = acc[d] * correction + weight * v[vBase + d]; }
    runningMax = newMax;
  }
  let oBase = (seq + i) * p.nHeads * HEAD_DIM + h * HEAD_DIM;
  let inv = select(0.0, 1.0 / denom, denom > 0.0);
  for (var d = 0u; d < HEAD_DIM; d++) { out[oBase + d] = acc[d] * inv; }
}
