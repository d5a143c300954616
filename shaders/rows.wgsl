// Appends each sequence's fresh rows, packed at rows 0 .. m_b - 1 of `src`, to the clean-set
// buffer `dst` at their rows there (cleanSetRow: the joined ones at its tail, rows n_b - j_b ..
// n_b - 1; a re-encoded one over its own row), `width` 32-bit words a row: the keys, values and
// encoder outputs of the tokens an incremental pass encoded joining the cached set. `count`:
// every fresh row (FRESH), or only the joined ones (JOINED: the first block's keys and values,
// which a re-encoded row keeps).
#include "common.wgsl"

struct Params {
  width: u32,
  srcStride: u32,
  srcOffset: u32,
  dstStride: u32,
  dstOffset: u32,
  count: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> src: array<u32>;        // [batch, seqStride, srcStride]
@group(0) @binding(4) var<storage, read_write> dst: array<u32>;  // [batch, seqStride, dstStride]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let i = gid.y;
  let c = gid.x;
  if (c >= p.width || i >= seqRows(p.count, b)) { return; }
  dst[cleanSetRow(FRESH, b, i) * p.dstStride + p.dstOffset + c] = src[(b * dims.seqStride + i) * p.srcStride + p.srcOffset + c];
}
