// Bindings, operand loads and the fused epilogue shared by every matmul variant:
// y = epilogue(x @ w^T) for the valid rows of each sequence, w stored [N, K] (PyTorch layout),
// so both operands are read along K, four floats (one K step) at a time.
// Switches: VEC4 (K % 4 == 0: vec4 loads; otherwise the last step is zero-padded), XSCALAR (x
// bound as plain floats all the same), F16W (w holds IEEE half floats, two per u32, widened
// exactly on load), NORM (a LayerNorm prologue: each x row is normalised as it is loaded,
// see normalized), BIAS, GELU (tanh approximation), SILU, ROTARY (rotary embedding of the
// output columns, see rotatePair), GATED_RESIDUAL (y += gate * result, gate from `constants`).
// Every variant stores through store4, four columns c0 .. c0+3 with c0 a multiple of 4.
// A NORM variant computes its rows' statistics itself (rowStats, or a variant's own shared
// version), reading them once more than the product does, instead of a dispatch of its own.
#include "common.wgsl"

struct Params {
  K: u32,
  N: u32,
  rowsKind: u32,
  // Row stride between sequences in y: 0 = dense (maxRows of this kind), else seqStride.
  ySeqDense: u32,
  gateOffset: u32,
  // ROTARY: columns c with c % rotaryPeriod < rotaryCols are rotated; the (cos, sin) table
  // [L, halfDim] starts at float ropeOffset of `constants`.
  ropeOffset: u32,
  rotaryPeriod: u32,
  rotaryCols: u32,
  halfDim: u32,
  // NORM: LN(x) * gain + shift, gain and shift (K floats each) at these offsets of `constants`.
  gainOffset: u32,
  shiftOffset: u32,
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
// Constant vectors: adaLN gates, LayerNorm gains and shifts, the rotary table.
@group(0) @binding(7) var<storage, read> constants: array<f32>;
#if ROTARY
@group(0) @binding(8) var<storage, read> positions: array<u32>;  // [batch, seqStride], of the rows kind
#endif

// Number of four-float K steps.
fn kSteps() -> u32 {
  return (p.K + 3u) / 4u;
}

// x[row, 4q .. 4q+3], `row` counted over the whole buffer (b * seqStride + i).
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
const LN_EPS: f32 = 1e-5;

// Which of the four floats of K step q lie inside K.
fn inK(q: u32) -> vec4<bool> {
  return vec4<u32>(4u * q) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(p.K);
}

// Mean and 1 / std (biased variance, eps inside the root) of row `row` of x, in two passes.
fn rowStats(row: u32) -> vec2<f32> {
  let steps = kSteps();
  var sum = vec4<f32>(0.0);
  for (var q = 0u; q < steps; q++) { sum += loadX(row, q); }
  let mean = dot(sum, vec4<f32>(1.0)) / f32(p.K);
  var sq = vec4<f32>(0.0);
  for (var q = 0u; q < steps; q++) {
    let d = select(vec4<f32>(0.0), loadX(row, q) - mean, inK(q));
    sq += d * d;
  }
  return vec2<f32>(mean, inverseSqrt(dot(sq, vec4<f32>(1.0)) / f32(p.K) + LN_EPS));
}

// The LayerNorm's per-channel gain and shift for K step q (zero past K, so padding stays zero).
struct NormTerms {
  gain: vec4<f32>,
  shift: vec4<f32>,
}

fn normTerms(q: u32) -> NormTerms {
  var t = NormTerms(vec4<f32>(0.0), vec4<f32>(0.0));
  for (var e = 0u; e < 4u; e++) {
    let k = 4u * q + e;
    if (k < p.K) {
      t.gain[e] = constants[p.gainOffset + k];
      t.shift[e] = constants[p.shiftOffset + k];
    }
  }
  return t;
}

// Four floats of a row, normalised: (x - mean) / std * gain + shift.
fn normalized(v: vec4<f32>, stats: vec2<f32>, t: NormTerms) -> vec4<f32> {
  return (v - stats.x) * stats.y * t.gain + t.shift;
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
  v += bias[c];
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
  let position = positions[b * dims.seqStride + i];
  v = vec4<f32>(rotatePair(c0, position, v.xy), rotatePair(c0 + 2u, position, v.zw));
#endif
  let yRows = select(dims.seqStride, maxRows(p.rowsKind), p.ySeqDense == 1u);
  let at = (b * yRows + i) * p.N + c0;
  for (var j = 0u; j < 4u; j++) {
    if (c0 + j >= p.N) { break; }
#if GATED_RESIDUAL
    y[at + j] += constants[p.gateOffset + c0 + j] * v[j];
#else
    y[at + j] = v[j];
#endif
  }
}
