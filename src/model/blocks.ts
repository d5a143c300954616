import type { Dispatch } from '../gpu/kernel.js';
import { attentionDispatch } from '../kernels/attention.js';
import { layerNormDispatch } from '../kernels/layernorm.js';
import { matmulDispatch } from '../kernels/matmul.js';
import { ropeDispatch, type RopeTables } from '../kernels/rope.js';
import { Rows, type Workspace } from '../kernels/workspace.js';
import type { BlockModulation, Modulations } from './conditioning.js';
import { headDim, type ModelConfig } from './config.js';

/** GPU-resident parameters by state_dict name. */
export type GpuWeights = (name: string) => GPUBuffer;

/** Activation buffers shared by both architectures, each [maxBatch, L, width]. */
export interface Activations {
  cleanTokens: GPUBuffer; // u32 [batch, L]
  cleanPositions: GPUBuffer; // u32 [batch, L]
  queryPositions: GPUBuffer; // u32 [batch, L]
  x: GPUBuffer; // [.., D] encoder stream; after the encoder, its output E
  y: GPUBuffer; // [.., D] decoder (query) stream
  norm: GPUBuffer; // [.., D] normalised clean rows
  queryNorm: GPUBuffer; // [.., D] normalised query rows
  q: GPUBuffer; // [.., D] query projections
  wide: GPUBuffer; // [.., 3D] qkv or kv projections
  attn: GPUBuffer; // [.., D] attention output
  hidden: GPUBuffer; // [.., max(F, 4D)]
  stat: GPUBuffer; // [batch, D]
  logits: GPUBuffer; // [batch, maxRows, V]
}

/** Everything a block needs besides its own weights. */
export interface ForwardContext {
  ws: Workspace;
  config: ModelConfig;
  w: GpuWeights;
  mod: Modulations;
  modBuffer: GPUBuffer;
  act: Activations;
  rope: RopeTables;
}

/** Multi-head attention helper: rotate q (query rows) and k (clean rows), attend, into act.attn. */
export async function rotaryAttention(
  f: ForwardContext,
  label: string,
  queries: Rows,
  q: { buffer: GPUBuffer; stride: number; offset: number },
  kv: { buffer: GPUBuffer; stride: number; kOffset: number; vOffset: number },
): Promise<Dispatch[]> {
  const { ws, config } = f;
  const heads = { nHeads: config.nHeads, headDim: headDim(config) };
  const queryPositions = queries === Rows.Clean ? f.act.cleanPositions : f.act.queryPositions;
  return Promise.all([
    ropeDispatch(ws, { label: `${label}.rope_q`, rows: queries, positions: queryPositions, tables: f.rope, x: q.buffer, rowStride: q.stride, colOffset: q.offset, ...heads }),
    ropeDispatch(ws, { label: `${label}.rope_k`, rows: Rows.Clean, positions: f.act.cleanPositions, tables: f.rope, x: kv.buffer, rowStride: kv.stride, colOffset: kv.kOffset, ...heads }),
    attentionDispatch(ws, {
      label: `${label}.attention`,
      queries,
      q,
      k: { buffer: kv.buffer, stride: kv.stride, offset: kv.kOffset },
      v: { buffer: kv.buffer, stride: kv.stride, offset: kv.vOffset },
      out: f.act.attn,
      ...heads,
    }),
  ]);
}

/** stream += gate_mlp * mlp(modulate(LN_norm2(stream), shift_mlp, scale_mlp)). */
export async function mlpResidual(f: ForwardContext, prefix: string, rows: Rows, stream: GPUBuffer, normOut: GPUBuffer, m: BlockModulation): Promise<Dispatch[]> {
  const { ws, w, config } = f;
  const D = config.hiddenSize;
  const F = config.mlpDim;
  return Promise.all([
    layerNormDispatch(ws, {
      label: `${prefix}.norm2`, rows, D, x: stream, weight: w(`${prefix}.norm2.weight`), out: normOut,
      modulate: { modulation: f.modBuffer, shiftOffset: m.shiftMlp, scaleOffset: m.scaleMlp },
    }),
    matmulDispatch(ws, { label: `${prefix}.mlp.0`, rows, x: normOut, weight: w(`${prefix}.mlp.0.weight`), bias: w(`${prefix}.mlp.0.bias`), activation: 'gelu', out: f.act.hidden, K: D, N: F }),
    matmulDispatch(ws, {
      label: `${prefix}.mlp.2`, rows, x: f.act.hidden, weight: w(`${prefix}.mlp.2.weight`), bias: w(`${prefix}.mlp.2.bias`), out: stream, K: F, N: D,
      gatedResidual: { modulation: f.modBuffer, gateOffset: m.gateMlp },
    }),
  ]);
}

/**
 * A DiT block over the clean rows (the PGM encoder block and the MDLM block):
 *   x += gate_msa * attn_out(attention(rope(q), rope(k), v)), qkv = modulate(LN_norm1(x)) @ attn_qkv^T
 *   x += gate_mlp * mlp(modulate(LN_norm2(x)))
 */
export async function ditBlock(f: ForwardContext, prefix: string): Promise<Dispatch[]> {
  const { ws, w, act, config } = f;
  const D = config.hiddenSize;
  const m = f.mod.blocks.get(prefix)!;
  const parts = await Promise.all([
    layerNormDispatch(ws, {
      label: `${prefix}.norm1`, rows: Rows.Clean, D, x: act.x, weight: w(`${prefix}.norm1.weight`), out: act.norm,
      modulate: { modulation: f.modBuffer, shiftOffset: m.shiftMsa, scaleOffset: m.scaleMsa },
    }).then((d) => [d]),
    matmulDispatch(ws, { label: `${prefix}.attn_qkv`, rows: Rows.Clean, x: act.norm, weight: w(`${prefix}.attn_qkv.weight`), out: act.wide, K: D, N: 3 * D }).then((d) => [d]),
    rotaryAttention(f, prefix, Rows.Clean, { buffer: act.wide, stride: 3 * D, offset: 0 }, { buffer: act.wide, stride: 3 * D, kOffset: D, vOffset: 2 * D }),
    matmulDispatch(ws, {
      label: `${prefix}.attn_out`, rows: Rows.Clean, x: act.attn, weight: w(`${prefix}.attn_out.weight`), out: act.x, K: D, N: D,
      gatedResidual: { modulation: f.modBuffer, gateOffset: m.gateMsa },
    }).then((d) => [d]),
    mlpResidual(f, prefix, Rows.Clean, act.x, act.norm, m),
  ]);
  return parts.flat();
}

/** logits = modulate(LN_norm_final(stream), shift, scale) @ linear^T + b, packed [batch, maxRows, V]. */
export async function outputLayer(f: ForwardContext, rows: Rows, stream: GPUBuffer, normOut: GPUBuffer): Promise<Dispatch[]> {
  const { ws, w, config } = f;
  const D = config.hiddenSize;
  return Promise.all([
    layerNormDispatch(ws, {
      label: 'output_layer.norm_final', rows, D, x: stream, weight: w('output_layer.norm_final.weight'), out: normOut,
      modulate: { modulation: f.modBuffer, shiftOffset: f.mod.output.shift, scaleOffset: f.mod.output.scale },
    }),
    matmulDispatch(ws, {
      label: 'output_layer.linear', rows, x: normOut, weight: w('output_layer.linear.weight'), bias: w('output_layer.linear.bias'),
      out: f.act.logits, K: D, N: config.vocabSize, denseOut: true,
    }),
  ]);
}
