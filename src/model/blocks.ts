import { fail } from '../errors.js';
import type { Dispatch } from '../gpu/kernel.js';
import { columns, reshape, type GpuTensor } from '../gpu/tensor.js';
import { attentionDispatch } from '../kernels/attention.js';
import { embedDispatch } from '../kernels/embed.js';
import { matmulDispatch, type MatmulArgs } from '../kernels/matmul.js';
import { activationShape, Rows, type Workspace } from '../kernels/workspace.js';
import type { BlockModulation, Modulations } from './conditioning.js';
import type { RowBlock } from './gpu-weights.js';
import { headDim, type ModelConfig } from '../weights/config.js';
import { layerNormBefore, rotaryColumns } from './fusion.js';

/** Activations shared by both architectures, sized once for [maxBatch, L]. */
export interface Activations {
  cleanTokens: GpuTensor; // u32 [batch, L]
  cleanPositions: GpuTensor; // u32 [batch, L]
  queryPositions: GpuTensor; // u32 [batch, L]
  x: GpuTensor; // [batch, L, D] encoder stream; after the encoder, its output E
  y: GpuTensor; // [batch, L, D] query stream
  q: GpuTensor; // [batch, L, D] query projections
  wide: GpuTensor; // [batch, L, 3D] qkv or kv projections
  attn: GpuTensor; // [batch, L, D] attention output
  hidden: GpuTensor; // [batch, L, max(F, 4D)] MLP hidden rows
  decoderKv: GpuTensor[]; // per group of decoder layers (fusion.ts): [batch, L, 2D * layers], each layer's k | v
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
  /** Their encoder stream [batch, L, D]; after the encoder, their encoder outputs. */
  stream: GpuTensor;
  /** Queue what the pass starts with (adaptive: the pick of the kept rows it re-encodes). */
  begin?(f: ForwardContext): void;
  /**
   * The keys | values attention reads for layer `prefix`, given this pass's rows of them
   * (`kv`, [batch, L, 2D], keys rotated; for a self-attention layer also its `queries`): `kv`
   * itself (exact), or the layer's cache with them appended (incremental).
   */
  keep(f: ForwardContext, prefix: string, kv: GpuTensor, queries?: GpuTensor): GpuTensor;
}

/** The exact clean side: every clean token is encoded each pass, in the shared activations. */
export const exactSide = (act: Activations): CleanSide => ({
  rows: Rows.Clean,
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
  /** The constant table (constants.ts): the adaLN modulations and LayerNorm gains (offsets in `mod`), the rotary table, the LayerNorm prologues' columns. */
  constants: GpuTensor;
  /** Where the rotary table (`rotaryTable`) starts in `constants`. */
  ropeOffset: number;
  /** By matmul weight name, per block of its rows: where the colGain | colShift of the LayerNorm before it start in `constants` (constants.ts). */
  normColumns: Map<string, readonly number[]>;
  act: Activations;
  clean: CleanSide;
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

/**
 * The forward pass as `write` emits it, once every pipeline is ready. A dispatch allocates its
 * buffers when its pipeline is ready: whether `write` or a dispatch fails, every emitted dispatch
 * has settled before this rejects, so that freeing the model's memory frees their buffers too.
 */
export async function recordPass(write: (emit: ForwardContext['emit']) => void): Promise<RecordedPass> {
  const pending: Promise<Dispatch | Dispatch[]>[] = [];
  const windows: Promise<Dispatch | Dispatch[]>[][] = [];
  const settled = () => Promise.allSettled([...pending, ...windows.flat()]);
  try {
    write((d, window) => void (window === undefined ? pending : (windows[window] ??= [])).push(d));
  } catch (e) {
    await settled();
    throw e;
  }
  const failed = (await settled()).find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  const ready = async (list: Promise<Dispatch | Dispatch[]>[]) => (await Promise.all(list)).flat();
  return { dispatches: await ready(pending), windows: await Promise.all(Array.from(windows, (w) => ready(w ?? []))) };
}

/**
 * The matmul arguments of the LayerNorm prologue of the matmul with weight `weight` (its block
 * of rows `block`, see ForwardContext.blocks): the LayerNorm before it (fusion.ts's
 * layerNormBefore) and the affine map that follows that up to the matmul (its modulation, or
 * its own bias), applied as each x row is loaded.
 */
export function normed(f: ForwardContext, weight: string, block = 0): Pick<MatmulArgs, 'constants' | 'norm'> {
  const terms = f.mod.norms.get(layerNormBefore(weight) ?? '');
  const columnsOffset = f.normColumns.get(weight)?.[block];
  if (!terms || columnsOffset === undefined) fail('architecture', `no LayerNorm before ${weight}`);
  return { constants: f.constants, norm: { gainOffset: terms.gain, columnsOffset } };
}

/**
 * The matmul arguments of a projection followed by rotary (the weight `weight`, laid out by
 * model/fusion.ts): its rotated columns rotated in the epilogue, at `positions`.
 */
export function rotary(
  f: ForwardContext,
  weight: string,
  positions: GpuTensor,
): Pick<MatmulArgs, 'constants' | 'rotary'> {
  const columns =
    rotaryColumns(f.config, weight) ?? fail('architecture', `${weight} is not a projection rotary follows`);
  return {
    constants: f.constants,
    rotary: { positions, tableOffset: f.ropeOffset, headDim: headDim(f.config), ...columns },
  };
}

/** What a `linear` adds to its matmul, each optional. */
export interface LinearTerms {
  /** Add the layer's bias, `<layer>.bias`. */
  bias?: boolean;
  /** The LayerNorm before the weight (and what follows it) in the prologue: `normed`. */
  norm?: boolean;
  activation?: 'gelu' | 'silu';
  /** Rotate the projection's rotary columns at these positions in the epilogue: `rotary`. */
  rotary?: GpuTensor;
  /** out += gate * result, the gate at this float offset of the model's constants. */
  gate?: number;
}

/**
 * out = x @ weight^T with `terms`, over `rows`: one matmul dispatch, labelled by its layer (the
 * parameter name `weight` without `.weight`).
 */
export function linear(
  f: ForwardContext,
  weight: string,
  rows: Rows,
  x: GpuTensor,
  out: GpuTensor,
  terms: LinearTerms = {},
): void {
  const layer = weight.replace(/\.weight$/, '');
  f.emit(
    matmulDispatch(f.ws, {
      label: layer,
      rows,
      x,
      weight: f.param(weight),
      out,
      ...(terms.bias && { bias: f.param(`${layer}.bias`) }),
      ...(terms.activation && { activation: terms.activation }),
      ...(terms.norm && normed(f, weight)),
      ...(terms.rotary && rotary(f, weight, terms.rotary)),
      ...(terms.gate !== undefined && { constants: f.constants, gatedResidual: { gateOffset: terms.gate } }),
    }),
  );
}

/** `t`'s buffer seen as [batch, L, width]: a narrower use of a shared activation. */
export const activationView = (f: ForwardContext, t: GpuTensor, width: number, name = t.name): GpuTensor =>
  reshape(t, activationShape(f.ws, width), name);

const heads = (f: ForwardContext) => ({ nHeads: f.config.nHeads, headDim: headDim(f.config) });

/**
 * The keys and values attention reads for layer `prefix`: `kv` ([batch, L, 2D], k | v of the
 * rows this pass encodes, keys rotated; `queries`: theirs, for a self-attention layer), kept as
 * the clean side keeps them.
 */
export function cleanKeysValues(
  f: ForwardContext,
  prefix: string,
  kv: GpuTensor,
  queries?: GpuTensor,
): { k: GpuTensor; v: GpuTensor } {
  const D = f.config.hiddenSize;
  const kept = f.clean.keep(f, prefix, kv, queries);
  return { k: columns(kept, 0, D, 'k'), v: columns(kept, D, D, 'v') };
}

/** attn = attention(q, k, v) per head (q and k rotated): q over `rows`, k and v over every clean row. */
export function attend(
  f: ForwardContext,
  label: string,
  rows: Rows,
  q: GpuTensor,
  kv: { k: GpuTensor; v: GpuTensor },
): void {
  f.emit(
    attentionDispatch(f.ws, {
      label: `${label}.attention`,
      queries: rows,
      q,
      k: kv.k,
      v: kv.v,
      out: f.act.attn,
      ...heads(f),
    }),
  );
}

/**
 * stream += gate_msa * attn_out(attention(q, k, v)): the attention residual of the encoder
 * block (queries: the rows it encodes) and of the decoder layer (queries: the query rows).
 */
export function attentionResidual(
  f: ForwardContext,
  prefix: string,
  rows: Rows,
  q: GpuTensor,
  kv: { k: GpuTensor; v: GpuTensor },
  stream: GpuTensor,
  m: BlockModulation,
): void {
  attend(f, prefix, rows, q, kv);
  linear(f, `${prefix}.attn_out.weight`, rows, f.act.attn, stream, { gate: m.gateMsa });
}

/**
 * stream += gate_mlp * mlp(modulate(LN_norm2(stream), shift_mlp, scale_mlp)), mlp = Linear, GELU, Linear
 * (the LayerNorm in mlp.0's prologue).
 */
export function mlpResidual(
  f: ForwardContext,
  prefix: string,
  rows: Rows,
  stream: GpuTensor,
  m: BlockModulation,
): void {
  const hidden = activationView(f, f.act.hidden, f.config.mlpDim); // [batch, L, F]
  linear(f, `${prefix}.mlp.0.weight`, rows, stream, hidden, { bias: true, activation: 'gelu', norm: true });
  linear(f, `${prefix}.mlp.2.weight`, rows, hidden, stream, { bias: true, gate: m.gateMlp });
}

/**
 * A DiT block over the clean side's rows (the PGM encoder block and the MDLM block):
 *   x += gate_msa * attn_out(attention(rope(q), rope(k), v)), q | k | v = modulate(LN_norm1(x)) @ attn_qkv^T
 *   (each LayerNorm in the next matmul's prologue, rope in the projection's epilogue)
 *   x += gate_mlp * mlp(modulate(LN_norm2(x)))
 */
export function ditBlock(f: ForwardContext, prefix: string): void {
  const { act } = f;
  const { rows, stream } = f.clean;
  const D = f.config.hiddenSize;
  const m = f.mod.blocks.get(prefix)!;
  const qkv = act.wide; // [batch, L, 3D]
  linear(f, `${prefix}.attn_qkv.weight`, rows, stream, qkv, { norm: true, rotary: act.cleanPositions });
  const q = columns(qkv, 0, D, 'q');
  const kv = cleanKeysValues(f, prefix, columns(qkv, D, 2 * D, 'kv'), q);
  attentionResidual(f, prefix, rows, q, kv, stream, m);
  mlpResidual(f, prefix, rows, stream, m);
}

/** x = embedding[tokens] over `rows`: one dispatch per block of the embedding's rows (token ids). */
export function embed(f: ForwardContext, rows: Rows, tokens: GpuTensor, out: GpuTensor): void {
  for (const { first, tensor } of f.blocks('vocab_embed.embedding'))
    f.emit(embedDispatch(f.ws, { rows, tokens, embedding: tensor, firstToken: first, out }));
}

/**
 * logits = modulate(LN_norm_final(stream), shift, scale) @ linear^T + b over `rows` (the
 * LayerNorm in the matmul's prologue), window by window (the logits buffer holds R rows of
 * each sequence), each block of the linear's rows (its output columns) its own matmul with its
 * own LayerNorm columns.
 */
export function outputLayer(f: ForwardContext, rows: Rows, stream: GpuTensor): void {
  const { ws, act } = f;
  const bias = f.param('output_layer.linear.bias');
  const R = act.logits.shape[1];
  for (let w = 0; w * R < ws.seqStride; w++) {
    f.blocks('output_layer.linear.weight').forEach(({ first, tensor }, block) => {
      const N = tensor.shape[0];
      const [out, b] = [columns(act.logits, first, N), columns(bias, first, N)];
      const norm = normed(f, 'output_layer.linear.weight', block);
      f.emit(
        matmulDispatch(ws, {
          label: 'output_layer.linear',
          rows,
          x: stream,
          weight: tensor,
          bias: b,
          out,
          firstRow: w * R,
          planN: f.config.vocabSize,
          ...norm,
        }),
        w,
      );
    });
  }
}
