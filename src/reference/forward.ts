/**
 * The reference forward passes of PGM (`PartitionDIT`) and MDLM (`DIT`), one short
 * function per piece of docs/model.md, built from ./ops.ts. Slow and plain on purpose:
 * the GPU forward and its stages are tested against these functions.
 */
import { fail } from '../errors.js';
import { headDim, type ModelConfig } from '../weights/config.js';
import { validateMdlmBatch, validatePgmBatch, type MdlmSequence, type PgmSequence } from '../model/inputs.js';
import type { WeightMap } from '../weights/host-tensor.js';
import {
  attention,
  embed,
  gatedResidual,
  geluTanh,
  layerNorm,
  linear,
  logsumexpRows,
  meanRows,
  modulate,
  modulations,
  param,
  rope,
  silu,
  sinusoidal,
  type BlockModulation,
  type Modulations,
  type OutputModulation,
} from './ops.js';

/** Split `[rows, sum(widths)]` into column blocks `[rows, width]`, in order. */
function splitColumns(x: Float32Array, rows: number, widths: readonly number[]): Float32Array[] {
  const stride = widths.reduce((a, b) => a + b, 0);
  let start = 0;
  return widths.map((width) => {
    const part = new Float32Array(rows * width);
    for (let r = 0; r < rows; r++) part.set(x.subarray(r * stride + start, r * stride + start + width), r * width);
    start += width;
    return part;
  });
}

/** `vocab_embed.embedding[tokens]` -> `[n, D]`. */
export function embedTokens(config: ModelConfig, weights: WeightMap, tokens: ArrayLike<number>): Float32Array {
  const shape = [config.vocabSize, config.hiddenSize];
  return embed({ shape, data: param(weights, 'vocab_embed.embedding', shape) }, tokens);
}

/** A block's feed-forward `mlp.2(gelu(mlp.0(h)))` -> `[rows, D]`. */
function mlp(config: ModelConfig, weights: WeightMap, prefix: string, h: Float32Array, rows: number): Float32Array {
  const D = config.hiddenSize;
  const F = config.mlpDim;
  const hidden = linear(
    h,
    rows,
    D,
    param(weights, `${prefix}.mlp.0.weight`, [F, D]),
    F,
    param(weights, `${prefix}.mlp.0.bias`, [F]),
  );
  return linear(
    geluTanh(hidden),
    rows,
    F,
    param(weights, `${prefix}.mlp.2.weight`, [D, F]),
    D,
    param(weights, `${prefix}.mlp.2.bias`, [D]),
  );
}

/** `x + gate_mlp * mlp(modulate(LN_norm2(x), shift_mlp, scale_mlp))`, the second half of every block. */
function mlpResidual(
  config: ModelConfig,
  weights: WeightMap,
  prefix: string,
  mod: BlockModulation,
  x: Float32Array,
  rows: number,
): Float32Array {
  const D = config.hiddenSize;
  const h = modulate(
    layerNorm(x, rows, D, param(weights, `${prefix}.norm2.weight`, [D])),
    rows,
    D,
    mod.shiftMlp,
    mod.scaleMlp,
  );
  return gatedResidual(x, mlp(config, weights, prefix, h, rows), mod.gateMlp, rows, D);
}

/** `[a rows; b rows]`. */
export function appendRows(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Keys (rotary-applied) and values `[n, D]` a block attends to, besides the rows it runs over. */
export interface CachedKeysValues {
  keys: Float32Array;
  values: Float32Array;
}

const NONE: CachedKeysValues = { keys: new Float32Array(0), values: new Float32Array(0) };

/** How a block's own keys and values join the cached ones: appended after them (the default). */
export type PlaceRows = (cached: CachedKeysValues, own: CachedKeysValues) => CachedKeysValues;

const appendOwn: PlaceRows = (cached, own) => ({
  keys: appendRows(cached.keys, own.keys),
  values: appendRows(cached.values, own.values),
});

/**
 * One DiT block (`encoder.blocks.{i}` or MDLM `blocks.{i}`) over the `m = positions.length`
 * rows of `x` `[m, D]`, RoPE at `positions`: bidirectional self-attention over `cached`'s rows
 * (none: the exact block) and its own, joined by `place` (default: its own appended). -> the
 * block's output `x` `[m, D]`, the keys and values it attended to, and its own rotary-applied
 * queries `[m, D]`.
 */
export function ditBlockOver(
  config: ModelConfig,
  weights: WeightMap,
  prefix: string,
  mod: BlockModulation,
  x: Float32Array,
  positions: ArrayLike<number>,
  cached: CachedKeysValues = NONE,
  place: PlaceRows = appendOwn,
): { x: Float32Array; queries: Float32Array } & CachedKeysValues {
  const m = positions.length;
  const D = config.hiddenSize;
  const H = config.nHeads;
  const dh = headDim(config);
  const h = modulate(
    layerNorm(x, m, D, param(weights, `${prefix}.norm1.weight`, [D])),
    m,
    D,
    mod.shiftMsa,
    mod.scaleMsa,
  );
  const [q, k, v] = splitColumns(linear(h, m, D, param(weights, `${prefix}.attn_qkv.weight`, [3 * D, D]), 3 * D), m, [
    D,
    D,
    D,
  ]);
  const { keys, values } = place(cached, { keys: rope(k, m, H, dh, positions), values: v });
  const queries = rope(q, m, H, dh, positions);
  const attended = attention(queries, keys, values, m, keys.length / D, H, dh);
  const afterAttention = gatedResidual(
    x,
    linear(attended, m, D, param(weights, `${prefix}.attn_out.weight`, [D, D]), D),
    mod.gateMsa,
    m,
    D,
  );
  return { x: mlpResidual(config, weights, prefix, mod, afterAttention, m), keys, values, queries };
}

/** One exact DiT block over all `n = positions.length` rows of `x` `[n, D]`. -> `[n, D]`. */
export const ditBlock = (
  config: ModelConfig,
  weights: WeightMap,
  prefix: string,
  mod: BlockModulation,
  x: Float32Array,
  positions: ArrayLike<number>,
): Float32Array => ditBlockOver(config, weights, prefix, mod, x, positions).x;

/** The PGM encoder over the clean tokens at their sequence positions -> `encoderOut` `[n, D]` (no final norm). */
export function pgmEncoder(
  config: ModelConfig,
  weights: WeightMap,
  mods: Modulations,
  cleanTokens: ArrayLike<number>,
  cleanPositions: ArrayLike<number>,
): Float32Array {
  let x = embedTokens(config, weights, cleanTokens);
  mods.encoder.forEach((mod, i) => {
    x = ditBlock(config, weights, `encoder.blocks.${i}`, mod, x, cleanPositions);
  });
  return x;
}

/**
 * The group swap's pre-queries `q0` `[m, D]` (before `pre_query_norm`), per `preQueryMode`:
 * `base_embedding[0]`, `+ sinus(pq)` for the `freqs` modes, `+` the mean or per-channel
 * logsumexp of the `n` encoder rows for the `+mean` / `+logsumexp` modes.
 */
export function groupSwapPreQueries(
  config: ModelConfig,
  weights: WeightMap,
  encoderOut: Float32Array,
  n: number,
  queryPositions: ArrayLike<number>,
): Float32Array {
  const D = config.hiddenSize;
  const m = queryPositions.length;
  const mode = config.preQueryMode;
  const base = param(weights, 'decoder.group_swap.base_embedding', [1, D]);
  const freqs = mode === 'learn' ? new Float32Array(m * D) : sinusoidal(queryPositions, D);
  const statistic =
    mode === 'learn+freqs+mean'
      ? meanRows(encoderOut, n, D)
      : mode === 'learn+freqs+logsumexp'
        ? logsumexpRows(encoderOut, n, D)
        : new Float32Array(D);
  const q0 = new Float32Array(m * D);
  for (let j = 0; j < m; j++) {
    for (let i = 0; i < D; i++) q0[j * D + i] = base[i] + freqs[j * D + i] + statistic[i];
  }
  return q0;
}

/** `query_processor`: Linear(D, D) (`linear`) or Linear(D, 4D), SiLU, Linear(4D, D) (`mlp4`). */
function queryProcessor(config: ModelConfig, weights: WeightMap, x: Float32Array, m: number): Float32Array {
  const D = config.hiddenSize;
  const p = 'decoder.group_swap.query_processor';
  if (config.queryProcessMode === 'linear')
    return linear(x, m, D, param(weights, `${p}.weight`, [D, D]), D, param(weights, `${p}.bias`, [D]));
  const hidden = linear(
    x,
    m,
    D,
    param(weights, `${p}.0.weight`, [4 * D, D]),
    4 * D,
    param(weights, `${p}.0.bias`, [4 * D]),
  );
  return linear(
    silu(hidden),
    m,
    4 * D,
    param(weights, `${p}.2.weight`, [D, 4 * D]),
    D,
    param(weights, `${p}.2.bias`, [D]),
  );
}

/**
 * Group swap (`decoder.group_swap`): one vector per query position, cross-attending from
 * the processed pre-queries to the encoder output. -> `[m, D]`.
 */
export function groupSwap(
  config: ModelConfig,
  weights: WeightMap,
  encoderOut: Float32Array,
  cleanPositions: ArrayLike<number>,
  queryPositions: ArrayLike<number>,
): Float32Array {
  const D = config.hiddenSize;
  const H = config.nHeads;
  const dh = headDim(config);
  const n = cleanPositions.length;
  const m = queryPositions.length;
  const p = 'decoder.group_swap';
  const q0 = groupSwapPreQueries(config, weights, encoderOut, n, queryPositions);
  const normed = layerNorm(
    q0,
    m,
    D,
    param(weights, `${p}.pre_query_norm.weight`, [D]),
    param(weights, `${p}.pre_query_norm.bias`, [D]),
  );
  const queries = queryProcessor(config, weights, normed, m);
  const kv = linear(
    encoderOut,
    n,
    D,
    param(weights, `${p}.hidden_to_key_value.weight`, [2 * D, D]),
    2 * D,
    param(weights, `${p}.hidden_to_key_value.bias`, [2 * D]),
  );
  const [keys, values] = splitColumns(kv, n, [D, D]);
  const attended = attention(
    rope(queries, m, H, dh, queryPositions),
    rope(keys, n, H, dh, cleanPositions),
    values,
    m,
    n,
    H,
    dh,
  );
  return linear(
    attended,
    m,
    D,
    param(weights, `${p}.output_linear.weight`, [D, D]),
    D,
    param(weights, `${p}.output_linear.bias`, [D]),
  );
}

/**
 * One decoder layer (`decoder.layers.{layer}`): the queries `y` `[m, D]` cross-attend to
 * `LN_kv_norm1(encoderOut)`; queries never see each other. -> `[m, D]`.
 */
export function pgmDecoderLayer(
  config: ModelConfig,
  weights: WeightMap,
  layer: number,
  mod: BlockModulation,
  y: Float32Array,
  queryPositions: ArrayLike<number>,
  encoderOut: Float32Array,
  cleanPositions: ArrayLike<number>,
): Float32Array {
  const D = config.hiddenSize;
  const H = config.nHeads;
  const dh = headDim(config);
  const n = cleanPositions.length;
  const m = queryPositions.length;
  const p = `decoder.layers.${layer}`;
  const a = modulate(layerNorm(y, m, D, param(weights, `${p}.q_norm1.weight`, [D])), m, D, mod.shiftMsa, mod.scaleMsa);
  const e = layerNorm(encoderOut, n, D, param(weights, `${p}.kv_norm1.weight`, [D]));
  const q = rope(linear(a, m, D, param(weights, `${p}.attn_q.weight`, [D, D]), D), m, H, dh, queryPositions);
  const [k, v] = splitColumns(linear(e, n, D, param(weights, `${p}.attn_kv.weight`, [2 * D, D]), 2 * D), n, [D, D]);
  const attended = attention(q, rope(k, n, H, dh, cleanPositions), v, m, n, H, dh);
  const afterAttention = gatedResidual(
    y,
    linear(attended, m, D, param(weights, `${p}.attn_out.weight`, [D, D]), D),
    mod.gateMsa,
    m,
    D,
  );
  return mlpResidual(config, weights, p, mod, afterAttention, m);
}

/** `output_layer`: `modulate(LN_norm_final(y), shift, scale) @ linear^T + b` -> logits `[rows, V]`. */
export function outputLayer(
  config: ModelConfig,
  weights: WeightMap,
  mod: OutputModulation,
  y: Float32Array,
  rows: number,
): Float32Array {
  const D = config.hiddenSize;
  const V = config.vocabSize;
  const h = modulate(
    layerNorm(y, rows, D, param(weights, 'output_layer.norm_final.weight', [D])),
    rows,
    D,
    mod.shift,
    mod.scale,
  );
  return linear(
    h,
    rows,
    D,
    param(weights, 'output_layer.linear.weight', [V, D]),
    V,
    param(weights, 'output_layer.linear.bias', [V]),
  );
}

/** PGM logits of one sequence, computed with only its own clean tokens -> `[m, V]`. */
export function pgmSequenceLogits(
  config: ModelConfig,
  weights: WeightMap,
  mods: Modulations,
  sequence: PgmSequence,
): Float32Array {
  const { tokens, positions, queries } = sequence;
  const encoderOut = pgmEncoder(config, weights, mods, tokens, positions);
  let y = groupSwap(config, weights, encoderOut, positions, queries);
  mods.decoder.forEach((mod, i) => {
    y = pgmDecoderLayer(config, weights, i, mod, y, queries, encoderOut, positions);
  });
  return outputLayer(config, weights, mods.output, y, queries.length);
}

const requireArch = (config: ModelConfig, arch: ModelConfig['arch']): void => {
  if (config.arch !== arch)
    fail('architecture', `this is a ${config.arch} model; use the ${config.arch} forward instead of the ${arch} one`);
};

/**
 * PGM logits `[batch, maxQueries, V]`. Each sequence is computed independently from its
 * own clean tokens, which is exactly what padding with `key index < n_b` masks means;
 * rows past a sequence's own query count are zeros.
 */
export function referencePgmLogits(
  config: ModelConfig,
  weights: WeightMap,
  sequences: readonly PgmSequence[],
): Float32Array {
  requireArch(config, 'pgm');
  const { batch, maxQueries } = validatePgmBatch(config, sequences);
  const V = config.vocabSize;
  const mods = modulations(weights, config);
  const logits = new Float32Array(batch * maxQueries * V);
  sequences.forEach((sequence, b) =>
    logits.set(pgmSequenceLogits(config, weights, mods, sequence), b * maxQueries * V),
  );
  return logits;
}

/** MDLM logits `[batch, n, V]`: DiT blocks over positions 0..n-1 (masks included), no padding. */
export function referenceMdlmLogits(
  config: ModelConfig,
  weights: WeightMap,
  sequences: readonly MdlmSequence[],
): Float32Array {
  requireArch(config, 'mdlm');
  const n = validateMdlmBatch(config, sequences);
  const V = config.vocabSize;
  const mods = modulations(weights, config);
  const positions = Array.from({ length: n }, (_, i) => i);
  const logits = new Float32Array(sequences.length * n * V);
  sequences.forEach((sequence, b) => {
    let x = embedTokens(config, weights, sequence.tokens);
    mods.blocks.forEach((mod, i) => {
      x = ditBlock(config, weights, `blocks.${i}`, mod, x, positions);
    });
    logits.set(outputLayer(config, weights, mods.output, x, n), b * n * V);
  });
  return logits;
}
