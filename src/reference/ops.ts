/**
 * Every operation the GPU kernels implement, written plainly on the CPU: the oracle each
 * kernel is tested against. Tensors are row-major `[rows, cols]` Float32Arrays; every
 * dot product, sum and softmax accumulates in JS numbers (float64) and each result is
 * stored back as float32, like one PyTorch float32 op after another.
 */
import { TIME_FREQ_DIM } from '../weights/parameters.js';
import { fail } from '../errors.js';
import type { ModelConfig } from '../weights/config.js';
import type { HostTensor, WeightMap } from '../weights/host-tensor.js';

const f32 = Math.fround;

/** `table[tokens]`: one row of the `[V, D]` table per token -> `[n, D]`. */
export function embed(table: HostTensor, tokens: ArrayLike<number>): Float32Array {
  const [V, D] = table.shape;
  const out = new Float32Array(tokens.length * D);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= V) fail('shape', `embed: token ${t} at index ${i} is outside [0, ${V})`);
    out.set(table.data.subarray(t * D, (t + 1) * D), i * D);
  }
  return out;
}

/**
 * Per-row LayerNorm over `D` (biased variance, eps inside the root). Without `weight` it
 * has no affine part; the models' bias-free LayerNorm passes only `weight`.
 */
export function layerNorm(
  x: Float32Array,
  rows: number,
  D: number,
  weight?: Float32Array,
  bias?: Float32Array,
  eps = 1e-5,
): Float32Array {
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let sum = 0;
    for (let i = 0; i < D; i++) sum += x[o + i];
    const mean = sum / D;
    let sq = 0;
    for (let i = 0; i < D; i++) sq += (x[o + i] - mean) ** 2;
    const invStd = 1 / Math.sqrt(sq / D + eps);
    for (let i = 0; i < D; i++) {
      let y = (x[o + i] - mean) * invStd;
      if (weight) y *= weight[i];
      if (bias) y += bias[i];
      out[o + i] = y;
    }
  }
  return out;
}

/** adaLN modulation: `x * (1 + scale) + shift`, with `shift`, `scale` of size `[D]`. */
export function modulate(
  x: Float32Array,
  rows: number,
  D: number,
  shift: Float32Array,
  scale: Float32Array,
): Float32Array {
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < D; i++) out[r * D + i] = x[r * D + i] * (1 + scale[i]) + shift[i];
  }
  return out;
}

/** `x @ W^T + b`: x `[rows, inDim]`, W `[outDim, inDim]` (PyTorch layout) -> `[rows, outDim]`. */
export function linear(
  x: Float32Array,
  rows: number,
  inDim: number,
  W: Float32Array,
  outDim: number,
  bias?: Float32Array,
): Float32Array {
  if (x.length !== rows * inDim) fail('shape', `linear: input has ${x.length} values, expected ${rows} x ${inDim}`);
  if (W.length !== outDim * inDim)
    fail('shape', `linear: weight has ${W.length} values, expected ${outDim} x ${inDim}`);
  const out = new Float32Array(rows * outDim);
  for (let r = 0; r < rows; r++) {
    const xRow = x.subarray(r * inDim, (r + 1) * inDim);
    for (let o = 0; o < outDim; o++) {
      const wOff = o * inDim;
      let acc = bias ? bias[o] : 0;
      for (let i = 0; i < inDim; i++) acc += xRow[i] * W[wOff + i];
      out[r * outDim + o] = acc;
    }
  }
  return out;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

/** GELU, tanh approximation (PyTorch `approximate='tanh'`). */
export function geluTanh(x: Float32Array): Float32Array {
  return x.map((v) => 0.5 * v * (1 + Math.tanh(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v))));
}

/** SiLU: `x * sigmoid(x)`. */
export function silu(x: Float32Array): Float32Array {
  return x.map((v) => v / (1 + Math.exp(-v)));
}

/**
 * RoPE's inverse frequencies `1 / 10000^(2i/dh)`, `i < dh/2`, rounded step by step to
 * float32 exactly as the authors' `Rotary` buffer is built, so angles at large positions
 * match PyTorch to the last bit of the argument.
 */
export function rotaryInvFreq(headDim: number): Float32Array {
  const inv = new Float32Array(headDim / 2);
  for (let i = 0; i < headDim / 2; i++) inv[i] = 1 / f32(10000 ** f32((2 * i) / headDim));
  return inv;
}

/**
 * Rotary position embedding (non-interleaved, full head dim) of `nHeads` heads of size
 * `headDim`, row `r` at sequence position `positions[r]`: per head, with `a = p * inv_freq`,
 * `(x1, x2) -> (x1 cos a - x2 sin a, x2 cos a + x1 sin a)`.
 * The heads start at column `colOffset` of rows `rowStride` wide (so the q or k part of a
 * fused projection can be rotated in place); returns a copy of `x` with those columns
 * rotated and every other column unchanged.
 */
export function rope(
  x: Float32Array,
  rows: number,
  nHeads: number,
  headDim: number,
  positions: ArrayLike<number>,
  rowStride = nHeads * headDim,
  colOffset = 0,
): Float32Array {
  if (positions.length !== rows) fail('shape', `rope: ${positions.length} positions for ${rows} rows`);
  const half = headDim / 2;
  const invFreq = rotaryInvFreq(headDim);
  const out = Float32Array.from(x);
  for (let r = 0; r < rows; r++) {
    const p = positions[r];
    for (let i = 0; i < half; i++) {
      const angle = f32(p * invFreq[i]);
      const cos = f32(Math.cos(angle));
      const sin = f32(Math.sin(angle));
      for (let h = 0; h < nHeads; h++) {
        const o = r * rowStride + colOffset + h * headDim;
        const x1 = x[o + i];
        const x2 = x[o + half + i];
        out[o + i] = x1 * cos - x2 * sin;
        out[o + half + i] = x2 * cos + x1 * sin;
      }
    }
  }
  return out;
}

/**
 * Multi-head attention, scale `1/sqrt(headDim)`, softmax over keys: q `[m, D]`,
 * k and v `[n, D]`, head `h` = columns `h*headDim ..`. Keys at index `>= nValidKeys`
 * (padding) are ignored; a query with no valid key gets zeros. -> `[m, D]`.
 */
export function attention(
  q: Float32Array,
  k: Float32Array,
  v: Float32Array,
  m: number,
  n: number,
  nHeads: number,
  headDim: number,
  nValidKeys = n,
): Float32Array {
  const D = nHeads * headDim;
  if (q.length !== m * D || k.length !== n * D || v.length !== n * D) {
    fail('shape', `attention: expected q [${m}, ${D}] and k, v [${n}, ${D}]`);
  }
  const keys = Math.min(nValidKeys, n);
  const scale = 1 / Math.sqrt(headDim);
  const out = new Float32Array(m * D);
  const scores = new Float64Array(keys);
  const acc = new Float64Array(headDim);
  for (let i = 0; i < m; i++) {
    for (let h = 0; h < nHeads; h++) {
      const qOff = i * D + h * headDim;
      let max = -Infinity;
      for (let j = 0; j < keys; j++) {
        const kOff = j * D + h * headDim;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[qOff + d] * k[kOff + d];
        scores[j] = dot * scale;
        if (scores[j] > max) max = scores[j];
      }
      let total = 0;
      acc.fill(0);
      for (let j = 0; j < keys; j++) {
        const w = Math.exp(scores[j] - max);
        total += w;
        const vOff = j * D + h * headDim;
        for (let d = 0; d < headDim; d++) acc[d] += w * v[vOff + d];
      }
      for (let d = 0; d < headDim; d++) out[qOff + d] = keys > 0 ? acc[d] / total : 0;
    }
  }
  return out;
}

/** `x + gate * y`, `gate` of size `[D]` (the adaLN-gated residual). */
export function gatedResidual(
  x: Float32Array,
  y: Float32Array,
  gate: Float32Array,
  rows: number,
  D: number,
): Float32Array {
  const out = new Float32Array(rows * D);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < D; i++) out[r * D + i] = x[r * D + i] + gate[i] * y[r * D + i];
  }
  return out;
}

/**
 * The group swap's absolute position code `sinus(p) = concat(cos(p/den), sin(p/den))`,
 * `den_i = 10000^(2i/D)`, `i < D/2` -> `[n, D]`. Arguments are rounded to float32 as in
 * the authors' `pos_freqs` buffer.
 */
export function sinusoidal(positions: ArrayLike<number>, D: number): Float32Array {
  const half = D / 2;
  const out = new Float32Array(positions.length * D);
  for (let r = 0; r < positions.length; r++) {
    for (let i = 0; i < half; i++) {
      const arg = f32(positions[r] / f32(10000 ** f32((2 * i) / D)));
      out[r * D + i] = Math.cos(arg);
      out[r * D + half + i] = Math.sin(arg);
    }
  }
  return out;
}

/** Per-channel mean over the first `nValid` rows of `x` `[rows, D]`; zeros when `nValid` is 0. */
export function meanRows(x: Float32Array, nValid: number, D: number): Float32Array {
  const out = new Float32Array(D);
  if (nValid === 0) return out;
  for (let i = 0; i < D; i++) {
    let sum = 0;
    for (let r = 0; r < nValid; r++) sum += x[r * D + i];
    out[i] = sum / nValid;
  }
  return out;
}

/** Per-channel `logsumexp` over the first `nValid` rows of `x` `[rows, D]`; zeros when `nValid` is 0. */
export function logsumexpRows(x: Float32Array, nValid: number, D: number): Float32Array {
  const out = new Float32Array(D);
  if (nValid === 0) return out;
  for (let i = 0; i < D; i++) {
    let max = -Infinity;
    for (let r = 0; r < nValid; r++) max = Math.max(max, x[r * D + i]);
    let sum = 0;
    for (let r = 0; r < nValid; r++) sum += Math.exp(x[r * D + i] - max);
    out[i] = max + Math.log(sum);
  }
  return out;
}

/** A model parameter by its state_dict name, checked against the shape the model needs. */
export function param(weights: WeightMap, name: string, shape: readonly number[]): Float32Array {
  const t = weights.get(name);
  if (!t) fail('architecture', `weight "${name}" is missing; convert the checkpoint again or check the model config`);
  if (t.shape.length !== shape.length || t.shape.some((s, i) => s !== shape[i])) {
    fail('architecture', `weight "${name}" has shape [${t.shape}], the model config needs [${shape}]`);
  }
  return t.data;
}

/** The six adaLN vectors of one transformer block, each `[D]`. */
export interface BlockModulation {
  shiftMsa: Float32Array;
  scaleMsa: Float32Array;
  gateMsa: Float32Array;
  shiftMlp: Float32Array;
  scaleMlp: Float32Array;
  gateMlp: Float32Array;
}

/** The output layer's adaLN vectors, each `[D]`. */
export interface OutputModulation {
  shift: Float32Array;
  scale: Float32Array;
}

/** Every block's adaLN vectors: `encoder`/`decoder` for a PGM, `blocks` for an MDLM (the others empty). */
export interface Modulations {
  encoder: BlockModulation[];
  decoder: BlockModulation[];
  blocks: BlockModulation[];
  output: OutputModulation;
}

/**
 * The constant conditioning vector `c = silu(mlp2(silu(mlp0(t_freq))))` at sigma = 0,
 * where `t_freq = [1 x128, 0 x128]` (cos and sin of 0). The outer silu is the authors'
 * `t_cond = F.silu(self.sigma_map(sigma))`; the adaLN linears then take `c` as is. -> `[C]`.
 */
export function conditioning(weights: WeightMap, config: ModelConfig): Float32Array {
  const C = config.condDim;
  const tFreq = new Float32Array(TIME_FREQ_DIM).fill(1, 0, TIME_FREQ_DIM / 2);
  const w0 = param(weights, 'sigma_map.mlp.0.weight', [C, TIME_FREQ_DIM]);
  const b0 = param(weights, 'sigma_map.mlp.0.bias', [C]);
  const w2 = param(weights, 'sigma_map.mlp.2.weight', [C, C]);
  const b2 = param(weights, 'sigma_map.mlp.2.bias', [C]);
  return silu(linear(silu(linear(tFreq, 1, TIME_FREQ_DIM, w0, C, b0)), 1, C, w2, C, b2));
}

/** `adaLN_modulation(c)` of the block at `prefix`, split into its six `[D]` vectors. */
export function blockModulation(
  weights: WeightMap,
  config: ModelConfig,
  prefix: string,
  c: Float32Array,
): BlockModulation {
  const D = config.hiddenSize;
  const C = config.condDim;
  const w = param(weights, `${prefix}.adaLN_modulation.weight`, [6 * D, C]);
  const b = param(weights, `${prefix}.adaLN_modulation.bias`, [6 * D]);
  const mod = linear(c, 1, C, w, 6 * D, b);
  const part = (i: number): Float32Array => mod.slice(i * D, (i + 1) * D);
  return {
    shiftMsa: part(0),
    scaleMsa: part(1),
    gateMsa: part(2),
    shiftMlp: part(3),
    scaleMlp: part(4),
    gateMlp: part(5),
  };
}

/** Every `adaLN_modulation(c)` of the model: constant, since `c` is (sigma = 0). */
export function modulations(weights: WeightMap, config: ModelConfig): Modulations {
  const c = conditioning(weights, config);
  const D = config.hiddenSize;
  const C = config.condDim;
  const blocks = (prefix: string, count: number): BlockModulation[] =>
    Array.from({ length: count }, (_, i) => blockModulation(weights, config, `${prefix}.${i}`, c));
  const w = param(weights, 'output_layer.adaLN_modulation.weight', [2 * D, C]);
  const b = param(weights, 'output_layer.adaLN_modulation.bias', [2 * D]);
  const out = linear(c, 1, C, w, 2 * D, b);
  const pgm = config.arch === 'pgm';
  return {
    encoder: pgm ? blocks('encoder.blocks', config.encoderBlocks) : [],
    decoder: pgm ? blocks('decoder.layers', config.decoderBlocks) : [],
    blocks: pgm ? [] : blocks('blocks', config.nBlocks),
    output: { shift: out.slice(0, D), scale: out.slice(D, 2 * D) },
  };
}
