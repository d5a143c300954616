import type { Dispatch } from '../gpu/kernel.js';
import { columns, reshape, type GpuTensor } from '../gpu/tensor.js';
import { attentionDispatch } from '../kernels/attention.js';
import { embedDispatch } from '../kernels/embed.js';
import { layerNormDispatch, type Modulate } from '../kernels/layernorm.js';
import { matmulDispatch } from '../kernels/matmul.js';
import { ropeDispatch, type RopeTables } from '../kernels/rope.js';
import { activationShape, Rows, type Workspace } from '../kernels/workspace.js';
import type { BlockModulation, Modulations } from './conditioning.js';
import type { RowBlock } from './gpu-weights.js';
import { headDim, type ModelConfig } from './config.js';

/** Activations shared by both architectures, sized once for [maxBatch, L]. */
export interface Activations {
  cleanTokens: GpuTensor; // u32 [batch, L]
  cleanPositions: GpuTensor; // u32 [batch, L]
  queryPositions: GpuTensor; // u32 [batch, L]
  x: GpuTensor; // [batch, L, D] encoder stream; after the encoder, its output E
  y: GpuTensor; // [batch, L, D] query stream
  norm: GpuTensor; // [batch, L, D] normalised clean rows
  queryNorm: GpuTensor; // [batch, L, D] normalised query rows
  q: GpuTensor; // [batch, L, D] query projections
  wide: GpuTensor; // [batch, L, 3D] qkv or kv projections
  attn: GpuTensor; // [batch, L, D] attention output
  hidden: GpuTensor; // [batch, L, max(F, 4D)] MLP hidden rows
  stat: GpuTensor; // [batch, D]
  logits: GpuTensor; // [batch, R, V]: a window of R rows of each sequence at a time
}

/**
 * The clean side of a forward pass: which rows the encoder runs over and where the keys and
 * values attention reads are kept. Exact: every clean token, its keys and values recomputed in
 * scratch each pass. Incremental (kv-set.ts): only the fresh rows, packed, their keys and values
 * appended to per-layer caches that hold every clean token's (docs/architecture.md).
 */
export interface CleanSide {
  /** The rows this pass encodes: Rows.Clean (exact) or Rows.Fresh. */
  rows: Rows;
  /** Their tokens and sequence positions, u32 [batch, L]. */
  tokens: GpuTensor;
  positions: GpuTensor;
  /** Their encoder stream [batch, L, D]; after the encoder, their encoder outputs. */
  stream: GpuTensor;
  /**
   * The keys | values attention reads for layer `prefix`, given this pass's rows of them
   * (`kv`, [batch, L, 2D], keys rotated): `kv` itself (exact), or the layer's cache with them
   * appended (incremental).
   */
  keep(f: ForwardContext, prefix: string, kv: GpuTensor): GpuTensor;
}

/** The exact clean side: every clean token is encoded each pass, in the shared activations. */
export const exactSide = (act: Activations): CleanSide => ({
  rows: Rows.Clean,
  tokens: act.cleanTokens,
  positions: act.cleanPositions,
  stream: act.x,
  keep: (_f, _prefix, kv) => kv,
});

/** Everything a block needs besides its own weights. */
export interface ForwardContext {
  ws: Workspace;
  config: ModelConfig;
  /** A parameter by state_dict name (without `backbone.`), shaped as in the checkpoint. */
  param(name: string): GpuTensor;
  /** The same in blocks of rows: one unless it is over one storage binding (the embedding, the output layer). */
  blocks(name: string): readonly RowBlock[];
  mod: Modulations;
  /** Every constant adaLN_modulation(c), concatenated (offsets in `mod`). */
  modulation: GpuTensor;
  act: Activations;
  clean: CleanSide;
  rope: RopeTables;
  /**
   * Queue the next dispatches of the pass, or of window `window` of its logits (see
   * RecordedPass); their pipelines compile while later ones are queued.
   */
  emit(dispatches: Promise<Dispatch | Dispatch[]>, window?: number): void;
}

/**
 * A forward pass: its dispatches up to the logits, then per window w of R logits rows the
 * dispatches that compute rows wR .. wR+R-1 of each sequence into the logits buffer. A step
 * runs each window and samples (or reads) it before the next overwrites it.
 */
export interface RecordedPass {
  dispatches: Dispatch[];
  windows: Dispatch[][];
}

/** The forward pass as it is written: `emit` in order, `build` once every pipeline is ready. */
export function recorder(): { emit: ForwardContext['emit']; build(): Promise<RecordedPass> } {
  const pending: Promise<Dispatch | Dispatch[]>[] = [];
  const windows: Promise<Dispatch | Dispatch[]>[][] = [];
  const ready = async (list: Promise<Dispatch | Dispatch[]>[]) => (await Promise.all(list)).flat();
  return {
    emit: (d, window) => void (window === undefined ? pending : (windows[window] ??= [])).push(d),
    build: async () => ({ dispatches: await ready(pending), windows: await Promise.all(Array.from(windows, (w) => ready(w ?? []))) }),
  };
}

/** The adaLN shift and scale at these offsets of the modulation table. */
export const modulate = (f: ForwardContext, shiftOffset: number, scaleOffset: number): Modulate => ({ modulation: f.modulation, shiftOffset, scaleOffset });

/** `t`'s buffer seen as [batch, L, width]: a narrower use of a shared activation. */
export const activationView = (f: ForwardContext, t: GpuTensor, width: number, name = t.name): GpuTensor => reshape(t, activationShape(f.ws, width), name);

/** A block's parameters: `p('attn_qkv.weight')` is `<prefix>.attn_qkv.weight`. */
export const paramsOf = (f: ForwardContext, prefix: string) => (name: string): GpuTensor => f.param(`${prefix}.${name}`);

const heads = (f: ForwardContext) => ({ nHeads: f.config.nHeads, headDim: headDim(f.config) });

/**
 * The keys and values attention reads for layer `prefix`: `kv` ([batch, L, 2D], k | v of the
 * rows this pass encodes), its keys rotated at their positions, kept as the clean side keeps them.
 */
export function cleanKeysValues(f: ForwardContext, prefix: string, kv: GpuTensor): { k: GpuTensor; v: GpuTensor } {
  const D = f.config.hiddenSize;
  const { rows, positions } = f.clean;
  f.emit(ropeDispatch(f.ws, { label: `${prefix}.rope_k`, rows, positions, tables: f.rope, x: columns(kv, 0, D, 'k'), ...heads(f) }));
  const kept = f.clean.keep(f, prefix, kv);
  return { k: columns(kept, 0, D, 'k'), v: columns(kept, D, D, 'v') };
}

/** attn = attention(rope(q), k, v) per head: q over `rows`, k (rotated) and v over every clean row. */
export function rotaryAttention(f: ForwardContext, label: string, rows: Rows, q: GpuTensor, kv: { k: GpuTensor; v: GpuTensor }): void {
  const positions = rows === Rows.Query ? f.act.queryPositions : f.clean.positions;
  f.emit(ropeDispatch(f.ws, { label: `${label}.rope_q`, rows, positions, tables: f.rope, x: q, ...heads(f) }));
  f.emit(attentionDispatch(f.ws, { label: `${label}.attention`, queries: rows, q, k: kv.k, v: kv.v, out: f.act.attn, ...heads(f) }));
}

/**
 * stream += gate_msa * attn_out(attention(rope(q), k, v)): the attention residual of the
 * encoder block (queries: the rows it encodes) and of the decoder layer (queries: the query rows).
 */
export function attentionResidual(f: ForwardContext, prefix: string, rows: Rows, q: GpuTensor, kv: { k: GpuTensor; v: GpuTensor }, stream: GpuTensor, m: BlockModulation): void {
  rotaryAttention(f, prefix, rows, q, kv);
  const gatedResidual = { modulation: f.modulation, gateOffset: m.gateMsa };
  f.emit(matmulDispatch(f.ws, { label: `${prefix}.attn_out`, rows, x: f.act.attn, weight: f.param(`${prefix}.attn_out.weight`), out: stream, gatedResidual }));
}

/** stream += gate_mlp * mlp(modulate(LN_norm2(stream), shift_mlp, scale_mlp)), mlp = Linear, GELU, Linear. */
export function mlpResidual(f: ForwardContext, prefix: string, rows: Rows, stream: GpuTensor, normOut: GpuTensor, m: BlockModulation): void {
  const { ws } = f;
  const p = paramsOf(f, prefix);
  const hidden = activationView(f, f.act.hidden, f.config.mlpDim); // [batch, L, F]
  f.emit(layerNormDispatch(ws, { label: `${prefix}.norm2`, rows, x: stream, weight: p('norm2.weight'), out: normOut, modulate: modulate(f, m.shiftMlp, m.scaleMlp) }));
  f.emit(matmulDispatch(ws, { label: `${prefix}.mlp.0`, rows, x: normOut, weight: p('mlp.0.weight'), bias: p('mlp.0.bias'), activation: 'gelu', out: hidden }));
  const gatedResidual = { modulation: f.modulation, gateOffset: m.gateMlp };
  f.emit(matmulDispatch(ws, { label: `${prefix}.mlp.2`, rows, x: hidden, weight: p('mlp.2.weight'), bias: p('mlp.2.bias'), out: stream, gatedResidual }));
}

/**
 * A DiT block over the clean side's rows (the PGM encoder block and the MDLM block):
 *   x += gate_msa * attn_out(attention(rope(q), rope(k), v)), q | k | v = modulate(LN_norm1(x)) @ attn_qkv^T
 *   x += gate_mlp * mlp(modulate(LN_norm2(x)))
 */
export function ditBlock(f: ForwardContext, prefix: string): void {
  const { ws, act } = f;
  const { rows, stream } = f.clean;
  const D = f.config.hiddenSize;
  const p = paramsOf(f, prefix);
  const m = f.mod.blocks.get(prefix)!;
  const qkv = act.wide; // [batch, L, 3D]
  f.emit(layerNormDispatch(ws, { label: `${prefix}.norm1`, rows, x: stream, weight: p('norm1.weight'), out: act.norm, modulate: modulate(f, m.shiftMsa, m.scaleMsa) }));
  f.emit(matmulDispatch(ws, { label: `${prefix}.attn_qkv`, rows, x: act.norm, weight: p('attn_qkv.weight'), out: qkv }));
  const kv = cleanKeysValues(f, prefix, columns(qkv, D, 2 * D, 'kv'));
  attentionResidual(f, prefix, rows, columns(qkv, 0, D, 'q'), kv, stream, m);
  mlpResidual(f, prefix, rows, stream, act.norm, m);
}

/** x = embedding[tokens] over `rows`: one dispatch per block of the embedding's rows (token ids). */
export function embed(f: ForwardContext, rows: Rows, tokens: GpuTensor, out: GpuTensor): void {
  for (const { first, tensor } of f.blocks('vocab_embed.embedding')) f.emit(embedDispatch(f.ws, { rows, tokens, embedding: tensor, firstToken: first, out }));
}

/**
 * logits = modulate(LN_norm_final(stream), shift, scale) @ linear^T + b over `rows`, window by
 * window (the logits buffer holds R rows of each sequence), each block of the linear's rows
 * (its output columns) its own matmul.
 */
export function outputLayer(f: ForwardContext, rows: Rows, stream: GpuTensor, normOut: GpuTensor): void {
  const { ws, mod, act } = f;
  f.emit(layerNormDispatch(ws, { label: 'output_layer.norm_final', rows, x: stream, weight: f.param('output_layer.norm_final.weight'), out: normOut, modulate: modulate(f, mod.output.shift, mod.output.scale) }));
  const bias = f.param('output_layer.linear.bias');
  const R = act.logits.shape[1];
  for (let w = 0; w * R < ws.seqStride; w++) {
    for (const { first, tensor } of f.blocks('output_layer.linear.weight')) {
      const N = tensor.shape[0];
      const [out, b] = [columns(act.logits, first, N), columns(bias, first, N)];
      f.emit(matmulDispatch(ws, { label: 'output_layer.linear', rows, x: normOut, weight: tensor, bias: b, out, firstRow: w * R, planN: f.config.vocabSize }), w);
    }
  }
}
