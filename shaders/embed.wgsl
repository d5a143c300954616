// x[b, i, :] = embedding[token, :] for the clean (or fresh) tokens of each sequence, the token
// read where it is in the clean set (cleanSetRow).
#include "common.wgsl"

struct Params {
  D: u32,
  rowsKind: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;     // [batch, seqStride]
@group(0) @binding(4) var<storage, read> embedding: array<f32>;  // [V, D]
@group(0) @binding(5) var<storage, read_write> x: array<f32>;    // [batch, seqStride, D]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let i = gid.y;
  let c = gid.x;
  if (c >= p.D || i >= seqRows(p.rowsKind, b)) { return; }
  x[(b * dims.seqStride + i) * p.D + c] = embedding[tokens[cleanSetRow(p.rowsKind, b, i)] * p.D + c];
}
