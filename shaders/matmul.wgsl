// Register-blocked matmul (see matmul_io.wgsl): each thread owns a TM x TN block of outputs
// (TN = 4, or 8 with COLS8) and reads straight from global memory, no workgroup memory, no
// barriers (what SwiftShader prefers). Each weight vector loaded is used for TM rows, so taller
// blocks load less per multiply-add. A workgroup of WG_X x WG_Y threads covers TM*WG_Y rows x
// TN*WG_X columns: 32 x 32 ("register"), 4 x 256 for few rows ("wide"), 64 x 64 ("tall").
// Requires: const WG_X, WG_Y, TM.
#include "matmul_io.wgsl"

#if COLS8
const TN: u32 = 8u;
#else
const TN: u32 = 4u;
#endif
// The block of y a workgroup covers (the host reads it for the grid).
const BLOCK_ROWS: u32 = TM * WG_Y;
const BLOCK_COLS: u32 = TN * WG_X;

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let rows = rowCount(b);
  let r0 = wid.y * BLOCK_ROWS + lid.y * TM;
  let c0 = wid.x * BLOCK_COLS + lid.x * TN;
  if (r0 >= rows || c0 >= p.N) { return; }
  let xBase = firstXRow(b);
  // Rows/columns past the end are clamped to the last valid one and never written.
  var xr: array<u32, TM>;
  var wr: array<u32, TN>;
  for (var i = 0u; i < TM; i++) { xr[i] = xBase + min(r0 + i, rows - 1u); }
  for (var j = 0u; j < TN; j++) { wr[j] = min(c0 + j, p.N - 1u); }
#if NORM
  // Each thread reads whole rows: their statistics build up as it goes (matmul_io.wgsl).
  var first: array<f32, TM>;
  var sums: array<vec4<f32>, TM>;
  var squares: array<vec4<f32>, TM>;
  for (var i = 0u; i < TM; i++) { first[i] = loadX(xr[i], 0u).x; }
#endif
  var acc: array<vec4<f32>, TM>;   // columns c0 .. c0+3
#if COLS8
  var acc2: array<vec4<f32>, TM>;  // columns c0+4 .. c0+7
#endif
  let steps = kSteps();
  for (var q = 0u; q < steps; q++) {
    let w0 = loadW(wr[0], q);
    let w1 = loadW(wr[1], q);
    let w2 = loadW(wr[2], q);
    let w3 = loadW(wr[3], q);
#if COLS8
    let w4 = loadW(wr[4], q);
    let w5 = loadW(wr[5], q);
    let w6 = loadW(wr[6], q);
    let w7 = loadW(wr[7], q);
#endif
#if NORM
    let gain = gainAt(q);
#endif
    for (var i = 0u; i < TM; i++) {
#if NORM
      let d = shifted(loadX(xr[i], q), first[i], q);
      sums[i] += d;
      squares[i] += d * d;
      let a = d * gain;
#else
      let a = loadX(xr[i], q);
#endif
      acc[i] += vec4<f32>(dot(a, w0), dot(a, w1), dot(a, w2), dot(a, w3));
#if COLS8
      acc2[i] += vec4<f32>(dot(a, w4), dot(a, w5), dot(a, w6), dot(a, w7));
#endif
    }
  }
#if NORM
  let columns = normColumns(c0);
#if COLS8
  let columns2 = normColumns(c0 + 4u);
#endif
#endif
  for (var i = 0u; i < TM; i++) {
    if (r0 + i >= rows) { break; }
#if NORM
    let stats = rowStats(dot(sums[i], vec4<f32>(1.0)), dot(squares[i], vec4<f32>(1.0)));
    store4(b, r0 + i, c0, normalizedSums(acc[i], columns, stats));
#if COLS8
    store4(b, r0 + i, c0 + 4u, normalizedSums(acc2[i], columns2, stats));
#endif
#else
    store4(b, r0 + i, c0, acc[i]);
#if COLS8
    store4(b, r0 + i, c0 + 4u, acc2[i]);
#endif
#endif
  }
}
