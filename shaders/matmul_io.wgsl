// Bindings, operand loads and the fused epilogue shared by every matmul variant:
// y = epilogue(x @ w^T) for the valid rows of each sequence, w stored [N, K] (PyTorch layout),
// so both operands are read along K, four floats (one K step) at a time. A matmul may cover a
// window of rows (rows firstRow .. firstRow + ySeqRows - 1 of each sequence, written to y's
// rows 0 ..) and write columns of a wider y (the logits, window by window and block by block).
// Switches: VEC4 (K % 4 == 0: vec4 loads; otherwise the last step is zero-padded), XSCALAR (x
// bound as plain floats all the same), F16W (w holds IEEE half floats, two per u32, widened
// exactly on load), NORM (a LayerNorm of each x row first, see below), BIAS, GELU (tanh
// approximation), SILU, ROTARY (rotary embedding of the output columns, see rotatePair),
// GATED_RESIDUAL (y += gate * result, gate from `constants`).
// Every variant stores through store4, four columns c0 .. c0+3 with c0 a multiple of 4.
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
  // ROTARY: columns c with c % rotaryPeriod < rotaryCols are rotated; the (cos, sin) table
  // [L, halfDim] starts at float ropeOffset of `constants`.
  ropeOffset: u32,
  rotaryPeriod: u32,
  rotaryCols: u32,
  halfDim: u32,
  // NORM: the LayerNorm's gain (K floats) and the weight's colGain | colShift (2N) in `constants`.
  gainOffset: u32,
  columnsOffset: u32,
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
// Constant vectors: adaLN gates, LayerNorm gains, the rotary table, a LayerNorm prologue's columns.
@group(0) @binding(7) var<storage, read> constants: array<f32>;
#if ROTARY
@group(0) @binding(8) var<storage, read> positions: array<u32>;  // [batch, seqStride], read at cleanSetRow
#endif

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

#if NORM
// The LayerNorm prologue, without a pass of its own over x: each x value d = x - c (c: its row's
// first value, which keeps the one-pass variance from cancelling) enters the product as
// d * gain[k], and the row's sum and sum of squares of d build up as it is loaded. Then
//   LN(x) * gain + shift, times w  =  inv * (acc - mean' * colGain) + colShift
// with acc the product, mean' the mean of d, inv 1 / std, and colGain = w . gain,
// colShift = w . shift per column (constants at columnsOffset, computed at load).
const LN_EPS: f32 = 1e-5;

// Which of the four floats of K step q lie inside K.
fn inK(q: u32) -> vec4<bool> {
  return vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.K);
}

// The gain of the four floats of K step q (zero past K).
fn gainAt(q: u32) -> vec4<f32> {
  var g = vec4<f32>(0.0);
  for (var e = 0u; e < 4u; e++) {
    if (4u * q + e < p.K) { g[e] = constants[p.gainOffset + 4u * q + e]; }
  }
  return g;
}

// d = x - c of K step q of a row (zero past K).
fn shifted(v: vec4<f32>, c: f32, q: u32) -> vec4<f32> {
  return select(vec4<f32>(0.0), v - c, inK(q));
}

// Mean of d and 1 / std (biased variance, eps inside the root) from d's sum and sum of squares.
fn rowStats(sum: f32, squares: f32) -> vec2<f32> {
  let mean = sum / f32(p.K);
  return vec2<f32>(mean, inverseSqrt(max(squares / f32(p.K) - mean * mean, 0.0) + LN_EPS));
}

// colGain and colShift of columns c0 .. c0+3 (loaded once for all of a thread's rows).
struct NormColumns {
  gain: vec4<f32>,
  shift: vec4<f32>,
}

fn normColumns(c0: u32) -> NormColumns {
  var t: NormColumns;
  for (var j = 0u; j < 4u; j++) {
    let c = min(c0 + j, p.N - 1u);
    t.gain[j] = constants[p.columnsOffset + c];
    t.shift[j] = constants[p.columnsOffset + p.N + c];
  }
  return t;
}

// The products of a row with four columns as the normalised row's.
fn normalizedSums(sums: vec4<f32>, columns: NormColumns, stats: vec2<f32>) -> vec4<f32> {
  return stats.y * (sums - stats.x * columns.gain) + columns.shift;
}
#endif

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

// Bias and activation of the dot product with column c.
fn activate(c: u32, sum: f32) -> f32 {
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
  return v;
}

#if ROTARY
// Rotary embedding of the pair of columns (c, c + 1), c even, at sequence position `position`.
// The weight's rows were laid out so that in each head the two halves a rotation mixes are
// adjacent: head column 2i holds x1[i], 2i + 1 holds x2[i] (scores q.k do not change), so
// (x1, x2) -> (x1 cos a - x2 sin a, x2 cos a + x1 sin a), a = position * inv_freq[i].
fn rotatePair(c: u32, position: u32, pair: vec2<f32>) -> vec2<f32> {
  let j = c % p.rotaryPeriod;
  if (j >= p.rotaryCols) { return pair; }
  let at = p.ropeOffset + 2u * (position * p.halfDim + (j % (2u * p.halfDim)) / 2u);
  let cosA = constants[at];
  let sinA = constants[at + 1u];
  return vec2<f32>(pair.x * cosA - pair.y * sinA, pair.y * cosA + pair.x * sinA);
}
#endif

// Apply the epilogue to the dot products of row i of sequence b with columns c0 .. c0+3
// (c0 % 4 == 0) and store those < N.
fn store4(b: u32, i: u32, c0: u32, sums: vec4<f32>) {
  var v: vec4<f32>;
  for (var j = 0u; j < 4u; j++) { v[j] = activate(min(c0 + j, p.N - 1u), sums[j]); }
#if ROTARY
  let position = positions[cleanSetRow(p.rowsKind, b, p.firstRow + i)];
  v = vec4<f32>(rotatePair(c0, position, v.xy), rotatePair(c0 + 2u, position, v.zw));
#endif
  let at = (b * p.ySeqRows + i) * p.yStride + p.yColumn + c0;
  for (var j = 0u; j < 4u; j++) {
    if (c0 + j >= p.N) { break; }
#if GATED_RESIDUAL
    y[at + j] += constants[p.gateOffset + c0 + j] * v[j];
#else
    y[at + j] = v[j];
#endif
  }
}
