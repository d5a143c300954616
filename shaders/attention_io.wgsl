// Bindings shared by the attention variants. Partition-aware multi-head attention over packed
// token sets: each query row of sequence b attends to the first n_b clean rows of the same
// sequence (keys past n_b are padding). Queries are clean rows (encoder self-attention) or
// query rows (group swap, decoder cross-attention). Online softmax: no score matrix is stored.
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
