/**
 * How the fused kernels want the weights: transforms applied once, at load, one tensor (or one
 * small group) at a time as the tensors arrive, before upload (gpu-weights.ts).
 *
 * Rotary in the projection's epilogue (kernels/matmul.ts, `RotaryEpilogue`): rotary mixes
 * columns i and i + dh/2 of each head; the thread that computes four adjacent output columns
 * can rotate them itself when those two are adjacent. So the output rows of every projection
 * whose q or k is rotated are reordered, per head, to x1[0], x2[0], x1[1], x2[1], ... Queries
 * and keys move alike, so every score q.k, and all that follows it, is unchanged.
 *
 * The decoder's keys and values of every layer in one matmul: all decoder layers read the
 * same E, through LN_kv_norm1, a LayerNorm with a weight and no bias, so
 *   LN_w(E) @ W^T = LN(E) @ (W diag(w))^T
 * and the layers' weights W diag(w), stacked, make one projection [2D * layers, D] after one
 * plain LayerNorm (`decoderKeysValues`). The product is formed in float64 and kept f32 (an f16
 * file's W is exact in it; rounding W diag(w) back to f16 would not be).
 */
import type { ModelConfig } from '../weights/config.js';
import type { HostTensor, StoredTensor } from '../weights/host-tensor.js';

/** Decoder layers first..last's keys and values in one projection (a weight name no checkpoint has). */
export const decoderKvName = (first: number, last: number): string => `decoder.layers.${first}-${last}.attn_kv`;
const FUSED_KV = /^decoder\.layers\.(\d+)-(\d+)\.attn_kv$/;

/** The rotated output columns of a projection: those with c % period < count. */
export interface RotaryColumns {
  period: number;
  count: number;
}

/**
 * The rotated columns of the projection whose weight (or bias) is `name`: q | k of each
 * attn_qkv (period 3D), k of the key | value projections (2D), the decoder's queries (D).
 */
export function rotaryColumns(config: ModelConfig, name: string): RotaryColumns | undefined {
  const D = config.hiddenSize;
  const queryOut = config.queryProcessMode === 'linear' ? 'query_processor' : 'query_processor.2';
  if (/(^|\.)attn_qkv\.weight$/.test(name)) return { period: 3 * D, count: 2 * D };
  if (FUSED_KV.test(name) || /^decoder\.group_swap\.hidden_to_key_value\.(weight|bias)$/.test(name))
    return { period: 2 * D, count: D };
  if (
    /^decoder\.layers\.\d+\.attn_q\.weight$/.test(name) ||
    new RegExp(`^decoder\\.group_swap\\.${queryOut.replace('.', '\\.')}\\.(weight|bias)$`).test(name)
  )
    return { period: D, count: D };
  return undefined;
}

/**
 * `t` ([N, K] weight or [N] bias, as float32 values or as stored bytes) with the rows of its
 * rotated columns reordered per head of `dh`: row 2i of a head takes the head's row i, row
 * 2i + 1 its row i + dh/2. Rows outside `columns` keep their place.
 */
export function pairRotaryRows<T extends HostTensor | StoredTensor>(
  t: T,
  dh: number,
  { period, count }: RotaryColumns,
): T {
  const N = t.shape[0];
  const half = dh / 2;
  const from = (row: number): number => {
    const j = row % period;
    if (j >= count) return row;
    const head = row - (j % dh);
    const k = j % dh;
    return head + (k % 2 === 0 ? k / 2 : half + (k - 1) / 2);
  };
  const move = <A extends Float32Array | Uint8Array>(src: A): A => {
    const width = src.length / N;
    const out = src.slice() as A;
    for (let row = 0; row < N; row++) out.set(src.subarray(from(row) * width, (from(row) + 1) * width), row * width);
    return out;
  };
  return 'data' in t ? { ...t, data: move(t.data) } : { ...t, bytes: move(t.bytes) };
}

/** The plain LayerNorm (no weight) before the decoder's fused key | value projections. */
export const DECODER_KV_NORM = 'decoder.layers.kv_norm';

/**
 * The decoder layers in groups whose fused keys and values ([maxBatch, L, 2D] floats per layer)
 * fit a storage binding of `maxBindingBytes`: [first, last] per group.
 */
export function decoderKvGroups(config: ModelConfig, maxBatch: number, maxBindingBytes: number): [number, number][] {
  const perLayer = maxBatch * config.length * 2 * config.hiddenSize * 4;
  const size = Math.max(1, Math.min(config.decoderBlocks, Math.floor(maxBindingBytes / perLayer)));
  const groups: [number, number][] = [];
  for (let first = 0; first < config.decoderBlocks; first += size)
    groups.push([first, Math.min(first + size, config.decoderBlocks) - 1]);
  return groups;
}

/** The decoder layer whose attn_kv weight `name` is (fused into its group's projection), else undefined. */
export function decoderKvLayer(name: string): number | undefined {
  const m = name.match(/^decoder\.layers\.(\d+)\.attn_kv\.weight$/);
  return m ? Number(m[1]) : undefined;
}

/** A LayerNorm's weight or bias: only the host reads it (conditioning.ts folds it into the matmul after it, or it is kv_norm1, folded into attn_kv). */
export const isLayerNormParam = (name: string, shape: readonly number[]): boolean =>
  shape.length === 1 && /(^|\.)(norm1|norm2|q_norm1|kv_norm1|pre_query_norm|norm_final)\.(weight|bias)$/.test(name);

/**
 * [W_i diag(w_i) for decoder layers first..last], stacked: [2D * layers, D], f32 (its rows not
 * yet paired for rotary); `get` gives each W as the model stores it (f16 storage rounds it first).
 */
export function decoderKeysValues(
  config: ModelConfig,
  first: number,
  last: number,
  get: (name: string) => HostTensor,
): HostTensor {
  const D = config.hiddenSize;
  const rows = 2 * D;
  const data = new Float32Array((last - first + 1) * rows * D);
  for (let layer = first; layer <= last; layer++) {
    const W = get(`decoder.layers.${layer}.attn_kv.weight`).data;
    const w = get(`decoder.layers.${layer}.kv_norm1.weight`).data;
    const at = (layer - first) * rows * D;
    for (let n = 0; n < rows; n++) for (let k = 0; k < D; k++) data[at + n * D + k] = W[n * D + k] * w[k];
  }
  return { shape: [(last - first + 1) * rows, D], data };
}

/**
 * The LayerNorm (conditioning.ts's name) whose output is the x of the matmul with weight `name`,
 * applied in that matmul's prologue (kernels/matmul.ts, `NormPrologue`); undefined if none.
 */
export function layerNormBefore(name: string): string | undefined {
  if (FUSED_KV.test(name)) return DECODER_KV_NORM;
  const block = name.match(/^(.*)\.(attn_qkv|mlp\.0|attn_q)\.weight$/);
  if (block) return `${block[1]}.${{ attn_qkv: 'norm1', 'mlp.0': 'norm2', attn_q: 'q_norm1' }[block[2]]}`;
  if (/^decoder\.group_swap\.query_processor(\.0)?\.weight$/.test(name)) return 'decoder.group_swap.pre_query_norm';
  if (name === 'output_layer.linear.weight') return 'output_layer.norm_final';
  return undefined;
}
