/**
 * The work of one forward pass, dispatch by dispatch, exactly as src/model/pgm.ts and
 * mdlm.ts encode it: one entry per dispatch label, with the rows it really covers (each
 * sequence's own clean and query counts; padding is never computed).
 * FLOPs count matmuls (2*rows*K*N) and attention (4*D*keys per query row: q.k and p.v);
 * bytes are the minimum traffic of the memory-bound kernels (read once, write once); weights,
 * the bytes of model weights a dispatch reads (each once; the bench's weights are f32).
 */
import type { ModelConfig } from '../src/weights/config.js';
import { decoderKvName } from '../src/model/fusion.js';

export type OpClass = 'matmul' | 'attention' | 'memory';

export interface Op {
  /** The dispatch's bind-group label (src/kernels/* wrappers), e.g. `encoder.blocks.0.attn_qkv`. */
  label: string;
  cls: OpClass;
  flops: number;
  bytes: number;
  weights: number;
}

const F32 = 4;
const sum = (xs: readonly number[]): number => xs.reduce((a, x) => a + x, 0);

/** Builds the op list of one forward pass for per-sequence clean counts `n` and query counts `m`. */
class Ops {
  readonly list: Op[] = [];
  constructor(
    readonly c: ModelConfig,
    readonly n: readonly number[],
    readonly m: readonly number[],
  ) {}

  matmul(label: string, rows: readonly number[], K: number, N: number): void {
    const r = sum(rows);
    this.list.push({
      label,
      cls: 'matmul',
      flops: 2 * r * K * N,
      bytes: F32 * (r * K + N * K + r * N),
      weights: F32 * N * K,
    });
  }

  /** Each query row of sequence b attends to its n_b clean keys, all heads. */
  attention(label: string, queries: readonly number[]): void {
    const D = this.c.hiddenSize;
    const pairs = sum(queries.map((q, b) => q * this.n[b]));
    this.list.push({
      label,
      cls: 'attention',
      flops: 4 * D * pairs,
      bytes: F32 * D * (2 * sum(queries) + 2 * sum(this.n)),
      weights: 0,
    });
  }

  /** A row-wise kernel reading `inWidth` and writing `outWidth` floats per row, `weightWidth` of them weights. */
  rows(label: string, rows: readonly number[], inWidth: number, outWidth: number, weightWidth = 0): void {
    this.list.push({
      label,
      cls: 'memory',
      flops: 0,
      bytes: F32 * sum(rows) * (inWidth + outWidth),
      weights: F32 * sum(rows) * weightWidth,
    });
  }

  /** The LayerNorm before mlp.0 is in its prologue (no dispatch of its own, as every LayerNorm). */
  mlp(prefix: string, rows: readonly number[]): void {
    const { hiddenSize: D, mlpDim: F } = this.c;
    this.matmul(`${prefix}.mlp.0`, rows, D, F);
    this.matmul(`${prefix}.mlp.2`, rows, F, D);
  }

  ditBlock(prefix: string): void {
    const D = this.c.hiddenSize;
    this.matmul(`${prefix}.attn_qkv`, this.n, D, 3 * D);
    this.attention(`${prefix}.attention`, this.n);
    this.matmul(`${prefix}.attn_out`, this.n, D, D);
    this.mlp(prefix, this.n);
  }

  output(rows: readonly number[]): void {
    const { hiddenSize: D, vocabSize: V } = this.c;
    this.matmul('output_layer.linear', rows, D, V);
  }
}

/**
 * PGM: embed + encoder over n clean tokens, group swap + decoder over m queries (the decoder's
 * keys and values over n, one projection per group of layers, `kvGroups` as
 * model/fusion.ts's decoderKvGroups gives them: default, one group), output over m rows.
 */
export function pgmOps(
  c: ModelConfig,
  clean: readonly number[],
  queries: readonly number[],
  kvGroups: [number, number][] = [[0, c.decoderBlocks - 1]],
): Op[] {
  const o = new Ops(c, clean, queries);
  const D = c.hiddenSize;
  o.rows('embed', clean, 1 + D, D, D);
  for (let i = 0; i < c.encoderBlocks; i++) o.ditBlock(`encoder.blocks.${i}`);
  const g = 'decoder.group_swap';
  if (c.preQueryMode === 'learn+freqs+mean' || c.preQueryMode === 'learn+freqs+logsumexp')
    o.rows('group_swap.pool', clean, D, 0);
  o.rows('group_swap.q0', queries, 1 + (c.preQueryMode === 'learn' ? 0 : D), D);
  if (c.queryProcessMode === 'linear') o.matmul(`${g}.query_processor`, queries, D, D);
  else {
    o.matmul(`${g}.query_processor.0`, queries, D, 4 * D);
    o.matmul(`${g}.query_processor.2`, queries, 4 * D, D);
  }
  o.matmul(`${g}.hidden_to_key_value`, clean, D, 2 * D);
  o.attention(`${g}.attention`, queries);
  o.matmul(`${g}.output_linear`, queries, D, D);
  for (const [first, last] of kvGroups) o.matmul(decoderKvName(first, last), clean, D, 2 * D * (last - first + 1));
  for (let i = 0; i < c.decoderBlocks; i++) {
    const p = `decoder.layers.${i}`;
    o.matmul(`${p}.attn_q`, queries, D, D);
    o.attention(`${p}.attention`, queries);
    o.matmul(`${p}.attn_out`, queries, D, D);
    o.mlp(p, queries);
  }
  o.output(queries);
  return o.list;
}

/** MDLM: embed + DiT blocks over all `rows` positions of each sequence, output over the same rows. */
export function mdlmOps(c: ModelConfig, rows: readonly number[]): Op[] {
  const o = new Ops(c, rows, []);
  o.rows('embed', rows, 1 + c.hiddenSize, c.hiddenSize, c.hiddenSize);
  for (let i = 0; i < c.nBlocks; i++) o.ditBlock(`blocks.${i}`);
  o.output(rows);
  return o.list;
}

/** The sampler pass at top-p 1 (as the bench samples): one read of a row of V logits (an upper bound for MDLM rows that stay masked). */
export function sampleOp(c: ModelConfig, rows: readonly number[]): Op {
  return { label: 'sample', cls: 'memory', flops: 0, bytes: F32 * sum(rows) * c.vocabSize, weights: 0 };
}

/** Matmul + attention FLOPs of a forward pass. */
export const forwardFlops = (ops: readonly Op[]): number => sum(ops.map((o) => o.flops));
