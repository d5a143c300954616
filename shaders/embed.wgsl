// x[b, i, :] = embedding[token, :] for the clean (or fresh) tokens of each sequence, the token
// read where it is in the clean set (cleanSetRow). The embedding may be one block of its rows
// (token ids first .. first + count - 1): tokens outside it are left to the dispatches of the
// other blocks.
// Switch: F16 (the embedding holds IEEE half floats, two per u32, widened exactly on load).
#include "common.wgsl"

struct Params {
  D: u32,
  rowsKind: u32,
  first: u32,
  count: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;     // [batch, seqStride]
#if F16
@group(0) @binding(4) var<storage, read> embedding: array<u32>;  // [count * D] halves, two per word
#else
@group(0) @binding(4) var<storage, read> embedding: array<f32>;  // [count, D]
#endif
@group(0) @binding(5) var<storage, read_write> x: array<f32>;    // [batch, seqStride, D]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let i = gid.y;
  let c = gid.x;
  if (c >= p.D || i >= seqRows(p.rowsKind, b)) { return; }
  let row = b * dims.seqStride + i;
  // Below `first`, the difference wraps around to a large value: out of the block too.
  let t = tokens[cleanSetRow(p.rowsKind, b, i)] - p.first;
  if (t >= p.count) { return; }
  let at = t * p.D + c;
#if F16
  x[row * p.D + c] = unpack2x16float(embedding[at / 2u])[at % 2u];
#else
  x[row * p.D + c] = embedding[at];
#endif
}
