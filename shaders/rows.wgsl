// Moves the fresh rows of each sequence between the tail of a clean-set buffer (rows
// n_b - m_b .. n_b - 1) and a packed buffer (rows 0 .. m_b - 1), `width` 32-bit words a row:
// gather (tail -> packed: the tokens an incremental pass encodes) or append (packed -> tail:
// their keys, values and encoder outputs joining the cached set). A bit copy, for f32 or u32.
#include "common.wgsl"

struct Params {
  width: u32,
  srcStride: u32,
  srcOffset: u32,
  dstStride: u32,
  dstOffset: u32,
  append: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> src: array<u32>;        // [batch, seqStride, srcStride]
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;  // [batch, seqStride, dstStride]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let i = gid.y;
  let c = gid.x;
  let m = seqRows(FRESH, b);
  if (c >= p.width || i >= m) { return; }
  let seq = b * dims.seqStride;
  let packed = seq + i;
  let tail = seq + seqRows(CLEAN, b) - m + i;
  let fromRow = select(tail, packed, p.append == 1u);
  let toRow = select(packed, tail, p.append == 1u);
  dst[toRow * p.dstStride + p.dstOffset + c] = src[fromRow * p.srcStride + p.srcOffset + c];
}
