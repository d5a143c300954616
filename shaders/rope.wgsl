// Rotary embedding in place, at each row's own sequence position (non-interleaved, full
// head dim): (x1, x2) -> (x1 cos a - x2 sin a, x2 cos a + x1 sin a), a = pos * inv_freq.
// cos/sin come from tables built on the host for positions 0..L-1.
#include "common.wgsl"

struct Params {
  rowStride: u32,
  colOffset: u32,
  nHeads: u32,
  halfDim: u32,
  rowsKind: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> positions: array<u32>;  // [batch, seqStride]
@group(0) @binding(4) var<storage, read> cosTable: array<f32>;   // [L, halfDim]
@group(0) @binding(5) var<storage, read> sinTable: array<f32>;   // [L, halfDim]
@group(0) @binding(6) var<storage, read_write> x: array<f32>;    // [batch, seqStride, rowStride]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let i = gid.y;
  let k = gid.x % p.halfDim;
  let h = gid.x / p.halfDim;
  if (h >= p.nHeads || i >= seqRows(p.rowsKind, b)) { return; }
  let row = b * dims.seqStride + i;
  let t = positions[row] * p.halfDim + k;
  let c = cosTable[t];
  let s = sinTable[t];
  let base = row * p.rowStride + p.colOffset + h * 2u * p.halfDim + k;
  let x1 = x[base];
  let x2 = x[base + p.halfDim];
  x[base] = x1 * c - x2 * s;
  x[base + p.halfDim] = x2 * c + x1 * s;
}
