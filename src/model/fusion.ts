/**
 * How the fused kernels want the weights: transforms applied to host tensors once, at load,
 * one tensor at a time, before upload (GpuModel's `param`).
 *
 * Rotary in the projection's epilogue (kernels/matmul.ts, `RotaryEpilogue`): rotary mixes
 * columns i and i + dh/2 of each head; the thread that computes four adjacent output columns
 * can rotate them itself when those two are adjacent. So the output rows of every projection
 * whose q or k is rotated are reordered, per head, to x1[0], x2[0], x1[1], x2[1], ... Queries
 * and keys move alike, so every score q.k, and all that follows it, is unchanged.
 */
import { headDim, type ModelConfig } from './config.js';
import type { HostTensor } from './tensor.js';

/** The rotated output columns of a projection: those with c % period < count. */
export interface RotaryColumns {
  period: number;
  count: number;
}

/**
 * The rotated columns of the projection whose weight (or bias) is `name`: q | k of each
 * attn_qkv (period 3D), k of each key | value projection (2D), the decoder's queries (D).
 */
export function rotaryColumns(config: ModelConfig, name: string): RotaryColumns | undefined {
  const D = config.hiddenSize;
  const queryOut = config.queryProcessMode === 'linear' ? 'query_processor' : 'query_processor.2';
  if (/(^|\.)attn_qkv\.weight$/.test(name)) return { period: 3 * D, count: 2 * D };
  if (/^decoder\.layers\.\d+\.attn_kv\.weight$/.test(name) || /^decoder\.group_swap\.hidden_to_key_value\.(weight|bias)$/.test(name)) return { period: 2 * D, count: D };
  if (/^decoder\.layers\.\d+\.attn_q\.weight$/.test(name) || new RegExp(`^decoder\\.group_swap\\.${queryOut.replace('.', '\\.')}\\.(weight|bias)$`).test(name)) return { period: D, count: D };
  return undefined;
}

/**
 * `t` ([N, K] weight or [N] bias) with the rows of its rotated columns reordered per head of
 * `dh`: row 2i of a head takes the head's row i, row 2i + 1 its row i + dh/2. Rows outside
 * `columns` keep their place; f16 bits are moved with their values.
 */
export function pairRotaryRows(t: HostTensor, dh: number, { period, count }: RotaryColumns): HostTensor {
  const N = t.shape[0];
  const width = t.data.length / N;
  const half = dh / 2;
  const from = (row: number): number => {
    const j = row % period;
    if (j >= count) return row;
    const head = row - (j % dh);
    const k = j % dh;
    return head + (k % 2 === 0 ? k / 2 : half + (k - 1) / 2);
  };
  const move = <A extends Float32Array | Uint16Array>(src: A): A => {
    const out = src.slice() as A;
    for (let row = 0; row < N; row++) out.set(src.subarray(from(row) * width, (from(row) + 1) * width), row * width);
    return out;
  };
  return { shape: t.shape, data: move(t.data), half: t.half && move(t.half) };
}

/** The tensor `name` as the fused kernels read it. */
export function fusedLayout(config: ModelConfig, name: string, t: HostTensor): HostTensor {
  const rotated = rotaryColumns(config, name);
  return rotated ? pairRotaryRows(t, headDim(config), rotated) : t;
}

/**
 * The LayerNorm (conditioning.ts's name) whose output is the x of the matmul with weight `name`,
 * applied in that matmul's prologue (kernels/matmul.ts, `NormPrologue`); undefined if none.
 */
export function layerNormBefore(name: string): string | undefined {
  const block = name.match(/^(.*)\.(attn_qkv|mlp\.0|attn_q|attn_kv)\.weight$/);
  if (block) return `${block[1]}.${{ attn_qkv: 'norm1', 'mlp.0': 'norm2', attn_q: 'q_norm1', attn_kv: 'kv_norm1' }[block[2]]}`;
  if (/^decoder\.group_swap\.query_processor(\.0)?\.weight$/.test(name)) return 'decoder.group_swap.pre_query_norm';
  if (name === 'output_layer.linear.weight') return 'output_layer.norm_final';
  return undefined;
}
