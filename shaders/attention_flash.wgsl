// Flash-style attention (see attention_io.wgsl), what real GPUs prefer: a workgroup serves
// QUERY_TILE query rows of one head, one thread each. Keys and values are staged KEY_TILE rows
// at a time in workgroup memory, read once from global memory for the whole workgroup; each
// thread scores its query against the tile and rescales its running sum once per tile.
// Requires: const HEAD_DIM, KEY_TILE (2 * KEY_TILE * HEAD_DIM floats of workgroup memory).
#include "attention_io.wgsl"

const QUERY_TILE: u32 = 64u;

var<workgroup> kTile: array<f32, KEY_TILE * HEAD_DIM>;  // [key, HEAD_DIM]
var<workgroup> vTile: array<f32, KEY_TILE * HEAD_DIM>;

@compute @workgroup_size(QUERY_TILE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let h = wid.y;
  let nQueries = seqRows(p.queryKind, b);
  let i0 = wid.x * QUERY_TILE;
  if (i0 >= nQueries) { return; }
  let i = i0 + lid.x;
  let nKeys = seqRows(CLEAN, b);
  let seq = b * dims.seqStride;
  // Threads past the last query stand in for it (all threads must stage tiles), never write.
  let qBase = (seq + min(i, nQueries - 1u)) * p.qStride + p.qOffset + h * HEAD_DIM;
  var qv: array<f32, HEAD_DIM>;
  var acc: array<f32, HEAD_DIM>;
  for (var d = 0u; d < HEAD_DIM; d++) {
    qv[d] = q[qBase + d] * p.scale;
    acc[d] = 0.0;
  }
  var runningMax = -3.0e38;
  var denom = 0.0;
  var s: array<f32, KEY_TILE>;
  for (var j0 = 0u; j0 < nKeys; j0 += KEY_TILE) {
    let count = min(KEY_TILE, nKeys - j0);
    for (var t = lid.x; t < count * HEAD_DIM; t += QUERY_TILE) {
      let row = seq + j0 + t / HEAD_DIM;
      let d = h * HEAD_DIM + t % HEAD_DIM;
      kTile[t] = k[row * p.kStride + p.kOffset + d];
      vTile[t] = v[row * p.vStride + p.vOffset + d];
    }
    workgroupBarrier();
    var tileMax = runningMax;
    for (var j = 0u; j < count; j++) {
      var score = 0.0;
      for (var d = 0u; d < HEAD_DIM; d++) { score += qv[d] * kTile[j * HEAD_DIM + d]; }
      s[j] = score;
      tileMax = max(tileMax, score);
    }
    let correction = exp(runningMax - tileMax);
    denom *= correction;
    for (var d = 0u; d < HEAD_DIM; d++) { acc[d] *= correction; }
    for (var j = 0u; j < count; j++) {
      let weight = exp(s[j] - tileMax);
      denom += weight;
      for (var d = 0u; d < HEAD_DIM; d++) { acc[d] += weight * vTile[j * HEAD_DIM + d]; }
    }
    runningMax = tileMax;
    workgroupBarrier();
  }
  if (i >= nQueries) { return; }
  let oBase = (seq + i) * p.nHeads * HEAD_DIM + h * HEAD_DIM;
  let inv = select(0.0, 1.0 / denom, denom > 0.0);
  for (var d = 0u; d < HEAD_DIM; d++) { out[oBase + d] = acc[d] * inv; }
}
