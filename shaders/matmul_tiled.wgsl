// Shared-memory tiled matmul (see matmul_io.wgsl), what real GPUs prefer: a workgroup of
// 16 x 16 threads computes a 64 x 64 block of y. Per K tile, each thread stages one four-float
// step of one x row and one w row in workgroup memory, transposed so that the four rows (or
// columns) a thread owns are one vec4; then each thread accumulates its 4 x 4 outputs as
// outer products, reading both operands from workgroup memory.
#include "matmul_io.wgsl"

const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
// The block of y a workgroup covers (the host reads it for the grid).
const BLOCK_ROWS: u32 = TILE;
const BLOCK_COLS: u32 = TILE;

var<workgroup> xTile: array<array<vec4<f32>, 16>, TILE_K>;  // [k][row / 4], rows 4r .. 4r+3
var<workgroup> wTile: array<array<vec4<f32>, 16>, TILE_K>;  // [k][col / 4]
#if NORM
var<workgroup> rowParts: array<vec2<f32>, 256>;  // [slot * 4 + part]: sum and sum of squares of d
#endif

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let b = wid.z;
  let rows = rowCount(b);
  let rowBlock = wid.y * BLOCK_ROWS;
  let colBlock = wid.x * BLOCK_COLS;
  if (rowBlock >= rows) { return; }
  // Staging: thread li loads row/column `slot` of the block, K step `part` of the tile.
  // Rows/columns past the end are clamped to the last valid one and never written.
  let slot = li / 4u;
  let part = li % 4u;
  let xRow = firstXRow(b) + min(rowBlock + slot, rows - 1u);
  let wRow = min(colBlock + slot, p.N - 1u);
#if NORM
  // The row a thread stages builds up its statistics over the thread's K steps (matmul_io.wgsl).
  let first = loadX(xRow, 0u).x;
  var sum = vec4<f32>(0.0);
  var squares = vec4<f32>(0.0);
#endif
  var acc: array<vec4<f32>, 4>;
  let steps = kSteps();
  for (var q0 = 0u; q0 < steps; q0 += TILE_K / 4u) {
    let q = q0 + part;
    var xv = vec4<f32>(0.0);
    var wv = vec4<f32>(0.0);
    if (q < steps) {
#if NORM
      let d = shifted(loadX(xRow, q), first, q);
      sum += d;
      squares += d * d;
      xv = d * gainAt(q);
#else
      xv = loadX(xRow, q);
#endif
      wv = loadW(wRow, q);
    }
    for (var e = 0u; e < 4u; e++) {
      xTile[4u * part + e][slot / 4u][slot % 4u] = xv[e];
      wTile[4u * part + e][slot / 4u][slot % 4u] = wv[e];
    }
    workgroupBarrier();
    for (var k = 0u; k < TILE_K; k++) {
      let a = xTile[k][lid.y];
      let bv = wTile[k][lid.x];
      acc[0] += a.x * bv;
      acc[1] += a.y * bv;
      acc[2] += a.z * bv;
      acc[3] += a.w * bv;
    }
    workgroupBarrier();
  }
#if NORM
  rowParts[li] = vec2<f32>(dot(sum, vec4<f32>(1.0)), dot(squares, vec4<f32>(1.0)));
  workgroupBarrier();
#endif
  let r0 = rowBlock + 4u * lid.y;
  let c0 = colBlock + 4u * lid.x;
#if NORM
  let columns = normColumns(c0);
#endif
  for (var i = 0u; i < 4u; i++) {
    if (r0 + i >= rows) { break; }
#if NORM
    let at = (4u * lid.y + i) * 4u;
    let t = rowParts[at] + rowParts[at + 1u] + rowParts[at + 2u] + rowParts[at + 3u];
    store4(b, r0 + i, c0, normalizedSums(acc[i], columns, rowStats(t.x, t.y)));
#else
    store4(b, r0 + i, c0, acc[i]);
#endif
  }
}
