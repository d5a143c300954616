// Bindings, operand loads and the fused epilogue shared by every matmul variant:
// y = epilogue(x @ w^T) for the valid rows of each sequence, w stored [N, K] (PyTorch layout),
// so both operands are read along K, four floats (one K step) at a time. A matmul may cover a
// window of rows (rows firstRow .. firstRow + ySeqRows - 1 of each sequence, written to y's
// rows 0 ..) and write columns of a wider y (the logits, window by window and block by block).
// Switches: VEC4 (K % 4 == 0: vec4 loads; otherwise the last step is zero-padded), XSCALAR (x
// bound as plain floats all the same), F16W (w holds IEEE half floats, two per u32, widened
// exactly on load), BIAS, GELU (tanh approximation), SILU, GATED_RESIDUAL (y += gate * result,
// gate from `modulation`).
#include "common.wgsl"

struct Params {
  K: u32,
  N: u32,
  rowsKind: u32,
  // Rows of y per sequence: seqStride, or the window's rows.
  ySeqRows: u32,
  gateOffset: u32,
  // The window's first row (0: from each sequence's first row).
  firstRow: u32,
  // Floats between rows of y, and the column of y (and of bias) where column 0 of this matmul goes.
  yStride: u32,
  yColumn: u32,
  biasColumn: u32,
}

@group(0) @binding(2) var<uniform> p: Params;
#if XSCALAR
@group(0) @binding(3) var<storage, read> x: array<f32>;        // [batch, seqStride, K]
#else
#if VEC4
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;  // [batch, seqStride, K/4]
#else
@group(0) @binding(3) var<storage, read> x: array<f32>;        // [batch, seqStride, K]
#endif
#endif
#if F16W
#if VEC4
@group(0) @binding(4) var<storage, read> w: array<vec2<u32>>;  // [N, K/4], four halves each
#else
@group(0) @binding(4) var<storage, read> w: array<u32>;        // [N * K] halves, two per word
#endif
#else
#if VEC4
@group(0) @binding(4) var<storage, read> w: array<vec4<f32>>;  // [N, K/4]
#else
@group(0) @binding(4) var<storage, read> w: array<f32>;        // [N, K]
#endif
#endif
@group(0) @binding(5) var<storage, read_write> y: array<f32>;  // [batch, rows, N]
@group(0) @binding(6) var<storage, read> bias: array<f32>;     // [N]
@group(0) @binding(7) var<storage, read> modulation: array<f32>;

// Rows of sequence b this matmul covers.
fn rowCount(b: u32) -> u32 {
  let rows = seqRows(p.rowsKind, b);
  return min(rows - min(rows, p.firstRow), p.ySeqRows);
}

// The x row (counted over the whole buffer) of sequence b's first row in the window.
fn firstXRow(b: u32) -> u32 {
  return b * dims.seqStride + p.firstRow;
}

// Number of four-float K steps.
fn kSteps() -> u32 {
  return (p.K + 3u) / 4u;
}

// x[row, 4q .. 4q+3], `row` counted over the whole buffer (firstXRow(b) + i).
fn loadX(row: u32, q: u32) -> vec4<f32> {
#if VEC4
#if XSCALAR
  let at = row * p.K + 4u * q;
  return vec4<f32>(x[at], x[at + 1u], x[at + 2u], x[at + 3u]);
#else
  return x[row * (p.K / 4u) + q];
#endif
#else
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * q + e < p.K) { v[e] = x[row * p.K + 4u * q + e]; }
  }
  return v;
#endif
}

// w[col, 4q .. 4q+3].
fn loadW(col: u32, q: u32) -> vec4<f32> {
#if VEC4
#if F16W
  let h = w[col * (p.K / 4u) + q];
  return vec4<f32>(unpack2x16float(h.x), unpack2x16float(h.y));
#else
  return w[col * (p.K / 4u) + q];
#endif
#else
  var v = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * q + e < p.K) { v[e] = wAt(col * p.K + 4u * q + e); }
  }
  return v;
#endif
}

#if !VEC4
// The weight at flat index `at` of [N, K].
fn wAt(at: u32) -> f32 {
#if F16W
  return unpack2x16float(w[at / 2u])[at % 2u];
#else
  return w[at];
#endif
}
#endif

// Apply the epilogue to the dot product of row i of sequence b with column c, and store it.
fn store(b: u32, i: u32, c: u32, sum: f32) {
  let at = (b * p.ySeqRows + i) * p.yStride + p.yColumn + c;
  var v = sum;
#if BIAS
  v += bias[p.biasColumn + c];
#endif
#if GELU
  let u = clamp(0.7978845608028654 * (v + 0.044715 * v * v * v), -15.0, 15.0);
  v = 0.5 * v * (1.0 + tanh(u));
#endif
#if SILU
  v = v / (1.0 + exp(-v));
#endif
#if GATED_RESIDUAL
  y[at] += modulation[p.gateOffset + c] * v;
#else
  y[at] = v;
#endif
}

// Store columns c0 .. c0+3 of row i of sequence b (those < N).
fn store4(b: u32, i: u32, c0: u32, sums: vec4<f32>) {
  for (var j = 0u; j < 4u; j++) {
    if (c0 + j >= p.N) { break; }
    store(b, i, c0 + j, sums[j]);
  }
}
