// Partition-aware multi-head attention over packed token sets: each query row of sequence b
// attends to the first n_b clean rows of the same sequence (keys past n_b are padding).
// Queries are clean rows (encoder self-attention) or query rows (group swap, decoder
// cross-attention). Online softmax: no score matrix is ever stored.
// Requires: const HEAD_DIM.
#include "common.wgsl"

struct Params {
  qStride: u32,
  qOffset: u32,
  kStride: u32,
  kOffset: u32,
  vStride: u32,
  vOffset: u32,
  nHeads: u32,
  queryKind: u32,
  scale: f32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> q: array<f32>;
@group(0) @binding(4) var<storage, read> k: array<f32>;
@group(0) @binding(5) var<storage, read> v: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;  // [batch, seqStride, nHeads*HEAD_DIM]

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
