// Moves the fresh rows of each sequence between a clean-set buffer and a packed buffer (rows
// 0 .. m_b - 1), `width` 32-bit words a row. Packed row i is the clean set's row
// n_b - j_b + i for i < j_b (the rows that joined: its tail), else reencoded[i - j_b] (a kept
// row the adaptive policy encodes again). gather (clean set -> packed: the tokens an
// incremental pass encodes) or append (packed -> clean set: their keys, values and encoder
// outputs joining the cached set, or replacing a re-encoded row's), over the fresh rows or only
// the joined ones (`count`). A bit copy, for f32 or u32.
#include "common.wgsl"

struct Params {
  width: u32,
  srcStride: u32,
  srcOffset: u32,
  dstStride: u32,
  dstOffset: u32,
  append: u32,
  count: u32, // FRESH or JOINED
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> src: array<u32>;        // [batch, seqStride, srcStride]
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;  // [batch, seqStride, dstStride]
@group(0) @binding(5) var<storage, read> reencoded: array<u32>;  // [batch, seqStride] clean rows

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let i = gid.y;
  let c = gid.x;
  if (c >= p.width || i >= seqRows(p.count, b)) { return; }
  let seq = b * dims.seqStride;
  let joined = seqRows(JOINED, b);
  var row = seqRows(CLEAN, b) - joined + i;
  if (i >= joined) { row = reencoded[seq + i - joined]; }
  let packed = seq + i;
  let fromRow = select(seq + row, packed, p.append == 1u);
  let toRow = select(packed, seq + row, p.append == 1u);
  dst[toRow * p.dstStride + p.dstOffset + c] = src[fromRow * p.srcStride + p.srcOffset + c];
}
