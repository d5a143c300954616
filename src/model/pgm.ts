import type { Dispatch } from '../gpu/kernel.js';
import { embedDispatch } from '../kernels/embed.js';
import { queryInitDispatches } from '../kernels/group-swap.js';
import { layerNormDispatch } from '../kernels/layernorm.js';
import { matmulDispatch } from '../kernels/matmul.js';
import { Rows } from '../kernels/workspace.js';
import { queryInitTerms } from './config.js';
import { ditBlock, mlpResidual, outputLayer, rotaryAttention, type ForwardContext } from './blocks.js';

/**
 * The PGM forward pass (model.md, "PGM at inference"), as a list of dispatches built once:
 * encoder over the clean tokens, group swap, decoder over the queries, output layer.
 */
export async function pgmForward(f: ForwardContext, sinus: GPUBuffer): Promise<Dispatch[]> {
  const { config, act, ws, w } = f;
  const parts: Dispatch[][] = [];
  // 1. x = embedding[cleanTokens]
  parts.push([await embedDispatch(ws, { tokens: act.cleanTokens, embedding: w('vocab_embed.embedding'), out: act.x, D: config.hiddenSize })]);
  // 2. Encoder: bidirectional self-attention among the clean tokens; E = x.
  for (let i = 0; i < config.encoderBlocks; i++) parts.push(await ditBlock(f, `encoder.blocks.${i}`));
  // 3. Group swap: one vector per query position, cross-attending to E.
  parts.push(await groupSwap(f, sinus));
  // 4. Decoder: cross-attention only, queries never see each other.
  for (let i = 0; i < config.decoderBlocks; i++) parts.push(await decoderLayer(f, `decoder.layers.${i}`));
  // 5. Output layer over the query rows.
  parts.push(await outputLayer(f, Rows.Query, act.y, act.queryNorm));
  return parts.flat();
}

/**
 * qv = query_processor(affineLN(q0)), kv = E @ hidden_to_key_value^T + b,
 * y = attention(rope(qv, pq), rope(k, pk), v) @ output_linear^T + b.
 */
async function groupSwap(f: ForwardContext, sinus: GPUBuffer): Promise<Dispatch[]> {
  const { ws, w, act, config } = f;
  const D = config.hiddenSize;
  const g = 'decoder.group_swap';
  const q0 = act.y; // the query stream starts as q0 and is overwritten by the group swap's output
  const processor =
    config.queryProcessMode === 'linear'
      ? [matmulDispatch(ws, { label: `${g}.query_processor`, rows: Rows.Query, x: act.queryNorm, weight: w(`${g}.query_processor.weight`), bias: w(`${g}.query_processor.bias`), out: act.q, K: D, N: D })]
      : [
          matmulDispatch(ws, { label: `${g}.query_processor.0`, rows: Rows.Query, x: act.queryNorm, weight: w(`${g}.query_processor.0.weight`), bias: w(`${g}.query_processor.0.bias`), activation: 'silu', out: act.hidden, K: D, N: 4 * D }),
          matmulDispatch(ws, { label: `${g}.query_processor.2`, rows: Rows.Query, x: act.hidden, weight: w(`${g}.query_processor.2.weight`), bias: w(`${g}.query_processor.2.bias`), out: act.q, K: 4 * D, N: D }),
        ];
  const parts = await Promise.all([
    queryInitDispatches(ws, { ...queryInitTerms(config.preQueryMode), D, encoderOut: act.x, base: w(`${g}.base_embedding`), queryPositions: act.queryPositions, sinus, stat: act.stat, out: q0 }),
    layerNormDispatch(ws, { label: `${g}.pre_query_norm`, rows: Rows.Query, D, x: q0, weight: w(`${g}.pre_query_norm.weight`), bias: w(`${g}.pre_query_norm.bias`), out: act.queryNorm }).then((d) => [d]),
    Promise.all(processor),
    matmulDispatch(ws, { label: `${g}.hidden_to_key_value`, rows: Rows.Clean, x: act.x, weight: w(`${g}.hidden_to_key_value.weight`), bias: w(`${g}.hidden_to_key_value.bias`), out: act.wide, K: D, N: 2 * D }).then((d) => [d]),
    rotaryAttention(f, g, Rows.Query, { buffer: act.q, stride: D, offset: 0 }, { buffer: act.wide, stride: 2 * D, kOffset: 0, vOffset: D }),
    matmulDispatch(ws, { label: `${g}.output_linear`, rows: Rows.Query, x: act.attn, weight: w(`${g}.output_linear.weight`), bias: w(`${g}.output_linear.bias`), out: act.y, K: D, N: D }).then((d) => [d]),
  ]);
  return parts.flat();
}

/**
 * y += gate_msa * attn_out(attention(rope(modulate(LN_q_norm1(y)) @ attn_q^T), rope(k), v)),
 *   k | v = LN_kv_norm1(E) @ attn_kv^T
 * y += gate_mlp * mlp(modulate(LN_norm2(y)))
 */
async function decoderLayer(f: ForwardContext, prefix: string): Promise<Dispatch[]> {
  const { ws, w, act, config } = f;
  const D = config.hiddenSize;
  const m = f.mod.blocks.get(prefix)!;
  const parts = await Promise.all([
    layerNormDispatch(ws, {
      label: `${prefix}.q_norm1`, rows: Rows.Query, D, x: act.y, weight: w(`${prefix}.q_norm1.weight`), out: act.queryNorm,
      modulate: { modulation: f.modBuffer, shiftOffset: m.shiftMsa, scaleOffset: m.scaleMsa },
    }).then((d) => [d]),
    layerNormDispatch(ws, { label: `${prefix}.kv_norm1`, rows: Rows.Clean, D, x: act.x, weight: w(`${prefix}.kv_norm1.weight`), out: act.norm }).then((d) => [d]),
    matmulDispatch(ws, { label: `${prefix}.attn_q`, rows: Rows.Query, x: act.queryNorm, weight: w(`${prefix}.attn_q.weight`), out: act.q, K: D, N: D }).then((d) => [d]),
    matmulDispatch(ws, { label: `${prefix}.attn_kv`, rows: Rows.Clean, x: act.norm, weight: w(`${prefix}.attn_kv.weight`), out: act.wide, K: D, N: 2 * D }).then((d) => [d]),
    rotaryAttention(f, prefix, Rows.Query, { buffer: act.q, stride: D, offset: 0 }, { buffer: act.wide, stride: 2 * D, kOffset: 0, vOffset: D }),
    matmulDispatch(ws, {
      label: `${prefix}.attn_out`, rows: Rows.Query, x: act.attn, weight: w(`${prefix}.attn_out.weight`), out: act.y, K: D, N: D,
      gatedResidual: { modulation: f.modBuffer, gateOffset: m.gateMsa },
    }).then((d) => [d]),
    mlpResidual(f, prefix, Rows.Query, act.y, act.queryNorm, m),
  ]);
  return parts.flat();
}
