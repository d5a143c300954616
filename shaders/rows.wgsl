// Appends each sequence's fresh rows, packed at rows 0 .. m_b - 1 of `src`, to the tail of a
// clean-set buffer (rows n_b - m_b .. n_b - 1 of `dst`), `width` 32-bit words a row: the keys,
// values and encoder outputs of the tokens an incremental pass encoded joining the cached set.
#include "common.wgsl"

struct Params {
  width: u32,
  srcStride: u32,
  srcOffset: u32,
  dstStride: u32,
  dstOffset: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> src: array<u32>;        // [batch, seqStride, srcStride]
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;  // [batch, seqStride, dstStride]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let i = gid.y;
  let c = gid.x;
  if (c >= p.width || i >= seqRows(FRESH, b)) { return; }
  dst[cleanSetRow(FRESH, b, i) * p.dstStride + p.dstOffset + c] = src[(b * dims.seqStride + i) * p.srcStride + p.srcOffset + c];
}
