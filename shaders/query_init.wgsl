// Group swap, first step: one vector per query position,
//   q0 = base_embedding [+ sinus(query position)] [+ pooled statistic of the encoder output].
// Switches: FREQS, STAT.
#include "common.wgsl"

struct Params {
  D: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(3) var<storage, read> base: array<f32>;            // [D]
@group(0) @binding(4) var<storage, read> queryPositions: array<u32>;  // [batch, seqStride]
@group(0) @binding(5) var<storage, read> sinus: array<f32>;           // [L, D]
@group(0) @binding(6) var<storage, read> stat: array<f32>;            // [batch, D]
@group(0) @binding(7) var<storage, read_write> q0: array<f32>;        // [batch, seqStride, D]

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let b = gid.z;
  let j = gid.y;
  let c = gid.x;
  if (c >= p.D || j >= seqRows(QUERY, b)) { return; }
  let row = b * dims.seqStride + j;
  var v = base[c];
#if FREQS
  v += sinus[queryPositions[row] * p.D + c];
#endif
#if STAT
  v += stat[b * p.D + c];
#endif
  q0[row * p.D + c] = v;
}
