// Matmul for few rows (see matmul_io.wgsl): the decoder's queries and the output layer late in
// sampling, where reading w once is the whole cost. A workgroup computes 4 rows x 64 columns:
// 16 column groups of 4 columns, each split over K between 16 lanes, so the lanes of a group
// read 16 consecutive four-float steps of a w row together; their partial sums meet in
// workgroup memory.
#include "matmul_io.wgsl"

const LANES: u32 = 16u;
// The block of y a workgroup covers (the host reads it for the grid).
const BLOCK_ROWS: u32 = 4u;
const BLOCK_COLS: u32 = 64u;

var<workgroup> partial: array<vec4<f32>, 256>;  // [column group * LANES + lane]: 4 columns

#if NORM
// The sum over the 16 lanes of column group `group` of each lane's `v`.
fn groupSum(li: u32, group: u32, v: vec4<f32>) -> vec4<f32> {
  partial[li] = v;
  workgroupBarrier();
  var sum = vec4<f32>(0.0);
  for (var l = 0u; l < LANES; l++) { sum += partial[group * LANES + l]; }
  workgroupBarrier();
  return sum;
}
#endif

@compute @workgroup_size(16, 16)
fn main(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) li: u32,
) {
  let b = wid.z;
  let rows = rowCount(b);
  let r0 = wid.y * BLOCK_ROWS;
  if (r0 >= rows) { return; }
  let lane = lid.x;
  let c0 = wid.x * BLOCK_COLS + lid.y * 4u;
  // Rows/columns past the end are clamped to the last valid one and never written.
  var xr: array<u32, 4>;
  var wr: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    xr[i] = firstXRow(b) + min(r0 + i, rows - 1u);
    wr[i] = min(c0 + i, p.N - 1u);
  }
#if NORM
  // Each lane's share of the four rows' statistics (matmul_io.wgsl), one component per row.
  var first: array<f32, 4>;
  for (var i = 0u; i < 4u; i++) { first[i] = loadX(xr[i], 0u).x; }
  var sums = vec4<f32>(0.0);
  var squares = vec4<f32>(0.0);
#endif
  var acc: array<vec4<f32>, 4>;
  let steps = kSteps();
  for (var q = lane; q < steps; q += LANES) {
    let w0 = loadW(wr[0], q);
    let w1 = loadW(wr[1], q);
    let w2 = loadW(wr[2], q);
    let w3 = loadW(wr[3], q);
#if NORM
    let gain = gainAt(q);
#endif
    for (var i = 0u; i < 4u; i++) {
#if NORM
      let d = shifted(loadX(xr[i], q), first[i], q);
      sums[i] += dot(d, vec4<f32>(1.0));
      squares[i] += dot(d, d);
      let a = d * gain;
#else
      let a = loadX(xr[i], q);
#endif
      acc[i] += vec4<f32>(dot(a, w0), dot(a, w1), dot(a, w2), dot(a, w3));
    }
  }
#if NORM
  let rowSums = groupSum(li, lid.y, sums);
  let rowSquares = groupSum(li, lid.y, squares);
#endif
  // Row by row: lane 0 of each group sums its 4 columns over the 16 lanes.
  for (var i = 0u; i < 4u; i++) {
    partial[li] = acc[i];
    workgroupBarrier();
    if (lane == 0u && r0 + i < rows && c0 < p.N) {
      var sum = vec4<f32>(0.0);
      for (var l = 0u; l < LANES; l++) { sum += partial[lid.y * LANES + l]; }
#if NORM
      store4(b, r0 + i, c0, normalizedSums(sum, normColumns(c0), rowStats(rowSums[i], rowSquares[i])));
#else
      store4(b, r0 + i, c0, sum);
#endif
    }
    workgroupBarrier();
  }
}
