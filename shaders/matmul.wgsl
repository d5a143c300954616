// Register-blocked matmul (see matmul_io.wgsl): each thread owns a 4x4 block of outputs and
// reads straight from global memory, no workgroup memory, no barriers (what SwiftShader
// prefers). A workgroup of WG_X x WG_Y threads covers 4*WG_Y rows x 4*WG_X columns:
// 8 x 8 for many rows, 64 x 1 ("wide") for few rows.
// Requires: const WG_X, WG_Y.
#include "matmul_io.wgsl"

@compute @workgroup_size(WG_X, WG_Y)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.z;
  let rows = seqRows(p.rowsKind, b);
  let r0 = (wid.y * WG_Y + lid.y) * 4u;
  let c0 = (wid.x * WG_X + lid.x) * 4u;
  if (r0 >= rows || c0 >= p.N) { return; }
  let xBase = b * dims.seqStride;
  // Rows/columns past the end are clamped to the last valid one and never written.
  var xr: array<u32, 4>;
  var wr: array<u32, 4>;
  for (var i = 0u; i < 4u; i++) {
    xr[i] = xBase + min(r0 + i, rows - 1u);
    wr[i] = min(c0 + i, p.N - 1u);
  }
  var acc: array<vec4<f32>, 4>;
  let steps = kSteps();
  for (var q = 0u; q < steps; q++) {
    let w0 = loadW(wr[0], q);
    let w1 = loadW(wr[1], q);
    let w2 = loadW(wr[2], q);
    let w3 = loadW(wr[3], q);
    for (var i = 0u; i < 4u; i++) {
      let a = loadX(xr[i], q);
      acc[i] += vec4<f32>(dot(a, w0), dot(a, w1), dot(a, w2), dot(a, w3));
    }
  }
  for (var i = 0u; i < 4u; i++) {
    if (r0 + i >= rows) { break; }
    for (var j = 0u; j < 4u; j++) {
      if (c0 + j >= p.N) { break; }
      store(b, r0 + i, c0 + j, acc[i][j]);
    }
  }
}
