import { fail } from '../errors.js';
import type { ModelConfig } from '../weights/config.js';
import { DECODER_KV_NORM } from './fusion.js';
import type { HostTensor, WeightMap } from '../weights/host-tensor.js';

/** Offsets (in floats) of one block's six adaLN vectors inside the modulation buffer. */
export interface BlockModulation {
  shiftMsa: number;
  scaleMsa: number;
  gateMsa: number;
  shiftMlp: number;
  scaleMlp: number;
  gateMlp: number;
}

/**
 * A LayerNorm with the affine map that follows it up to the next matmul, as one gain and one
 * shift per channel: LN_w(x) modulated by (shift, scale) is LN(x) * w (1 + scale) + shift,
 * the affine LayerNorm LN(x) * w + b. Float offsets of the two vectors.
 */
export interface NormTerms {
  gain: number;
  shift: number;
}

export interface Modulations {
  /** Every adaLN_modulation(c), concatenated: blocks in `prefixes` order, then the output layer; then the norms' gains and shifts. */
  values: Float32Array;
  blocks: Map<string, BlockModulation>;
  output: { shift: number; scale: number };
  /** By the LayerNorm's name (`encoder.blocks.0.norm1`): every LayerNorm of the model, as the matmul after it applies it. */
  norms: Map<string, NormTerms>;
}

const FREQ_DIM = 256;

function get(weights: WeightMap, name: string): HostTensor {
  const t = weights.get(name);
  if (!t) fail('architecture', `missing tensor ${name}`);
  return t;
}

/** y = W x + b for one vector (W [out, in]), accumulated in float64. */
function affine(W: HostTensor, b: HostTensor, x: Float64Array): Float64Array {
  const [out, inDim] = W.shape;
  if (inDim !== x.length || b.data.length !== out)
    fail('shape', `conditioning: ${W.shape} does not take a vector of ${x.length}`);
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b.data[o];
    for (let i = 0; i < inDim; i++) s += W.data[o * inDim + i] * x[i];
    y[o] = s;
  }
  return y;
}

const silu = (v: Float64Array): Float64Array => v.map((x) => x / (1 + Math.exp(-x)));

/**
 * The released text models are not time-conditioned: the backbone always sees sigma = 0,
 * so c = silu(mlp2(silu(mlp0(t_freq(0))))) and every adaLN_modulation(c) is a constant.
 * Computed once here, at load time, for the blocks named by `prefixes`.
 */
export function computeModulations(config: ModelConfig, weights: WeightMap, prefixes: readonly string[]): Modulations {
  const D = config.hiddenSize;
  const tFreq = new Float64Array(FREQ_DIM);
  tFreq.fill(1, 0, FREQ_DIM / 2); // cos(0) = 1, sin(0) = 0
  const hidden = silu(affine(get(weights, 'sigma_map.mlp.0.weight'), get(weights, 'sigma_map.mlp.0.bias'), tFreq));
  const c = silu(affine(get(weights, 'sigma_map.mlp.2.weight'), get(weights, 'sigma_map.mlp.2.bias'), hidden));
  const values = new Float32Array(prefixes.length * 6 * D + 2 * D);
  const blocks = new Map<string, BlockModulation>();
  prefixes.forEach((prefix, k) => {
    const base = k * 6 * D;
    values.set(
      affine(get(weights, `${prefix}.adaLN_modulation.weight`), get(weights, `${prefix}.adaLN_modulation.bias`), c),
      base,
    );
    blocks.set(prefix, {
      shiftMsa: base,
      scaleMsa: base + D,
      gateMsa: base + 2 * D,
      shiftMlp: base + 3 * D,
      scaleMlp: base + 4 * D,
      gateMlp: base + 5 * D,
    });
  });
  const outBase = prefixes.length * 6 * D;
  values.set(
    affine(get(weights, 'output_layer.adaLN_modulation.weight'), get(weights, 'output_layer.adaLN_modulation.bias'), c),
    outBase,
  );
  const output = { shift: outBase, scale: outBase + D };

  // Each LayerNorm's gain and shift, in float64 from its weight and its (float32) modulation.
  const modulation = (at: number, width: number) => Float64Array.from(values.subarray(at, at + width));
  const terms: [string, Float64Array, Float64Array][] = [];
  const norm = (name: string, mod?: Float64Array, shift = 0, scale = D) => {
    const w = weights.get(`${name}.weight`);
    if (!w) return;
    const bias = weights.get(`${name}.bias`)?.data;
    const gain = Float64Array.from(w.data, (x, i) => x * (mod ? 1 + mod[scale + i] : 1));
    terms.push([name, gain, Float64Array.from(gain, (_, i) => (mod ? mod[shift + i] : bias ? bias[i] : 0))]);
  };
  prefixes.forEach((prefix, k) => {
    const m = modulation(k * 6 * D, 6 * D);
    for (const first of ['norm1', 'q_norm1']) norm(`${prefix}.${first}`, m, 0, D);
    norm(`${prefix}.norm2`, m, 3 * D, 4 * D);
  });
  norm('decoder.group_swap.pre_query_norm');
  if (config.arch === 'pgm') terms.push([DECODER_KV_NORM, new Float64Array(D).fill(1), new Float64Array(D)]);
  norm('output_layer.norm_final', modulation(outBase, 2 * D), 0, D);
  const all = new Float32Array(values.length + 2 * D * terms.length);
  all.set(values);
  const norms = new Map<string, NormTerms>();
  terms.forEach(([name, gain, shift], i) => {
    const at = values.length + 2 * D * i;
    all.set(gain, at);
    all.set(shift, at + D);
    norms.set(name, { gain: at, shift: at + D });
  });
  return { values: all, blocks, output, norms };
}
