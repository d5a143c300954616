import { columns, type GpuTensor } from '../gpu/tensor.js';
import { queryInitDispatches } from '../kernels/group-swap.js';
import { appendFreshRowsDispatch } from '../kernels/rows.js';
import { Rows } from '../kernels/workspace.js';
import {
  activationView,
  attend,
  attentionResidual,
  cleanKeysValues,
  ditBlock,
  embed,
  linear,
  mlpResidual,
  outputLayer,
  type ForwardContext,
} from './blocks.js';
import { queryInitTerms } from '../weights/config.js';
import { decoderKvGroups, decoderKvName } from './fusion.js';

/**
 * The PGM forward pass (docs/model.md, "PGM at inference"): encoder over the clean side's
 * rows, group swap, decoder over the queries, output layer. Exact: the clean side is every
 * clean token. Incremental: only the fresh ones (the clean set's tail), whose keys and values
 * join the cached set; for the `+mean` and `+logsumexp` query modes their
 * encoder outputs also join E (act.x), which those read.
 */
export function pgmForward(f: ForwardContext, sinus: GpuTensor): void {
  const { config, act, ws, clean } = f;
  const incremental = clean.rows === Rows.Fresh;
  clean.begin?.(f);
  // 1. x = embedding[tokens]
  embed(f, clean.rows, act.cleanTokens, clean.stream);
  // 2. Encoder: bidirectional self-attention among the clean tokens; E = x.
  for (let i = 0; i < config.encoderBlocks; i++) ditBlock(f, `encoder.blocks.${i}`);
  // Only the `+mean` / `+logsumexp` statistic reads E over every clean row.
  if (incremental && queryInitTerms(config.preQueryMode).statistic)
    f.emit(appendFreshRowsDispatch(ws, { label: 'encoder outputs', from: clean.stream, to: act.x }));
  // 3. Group swap: y = one vector per query position, cross-attending to E.
  groupSwap(f, sinus);
  // 4. Decoder: cross-attention only, queries never see each other.
  const keysValues = decoderKeysValues(f);
  for (let i = 0; i < config.decoderBlocks; i++) decoderLayer(f, `decoder.layers.${i}`, keysValues[i]);
  // 5. Output layer over the query rows.
  outputLayer(f, Rows.Query, act.y);
}

/** The group swap's parameter prefix. */
const GS = 'decoder.group_swap';

/**
 * q0 = base + sinus(pq) [+ mean or logsumexp of E], qv = query_processor(affineLN(q0)),
 * k | v = E @ hidden_to_key_value^T + b, y = attention(rope(qv, pq), rope(k, pk), v) @ output_linear^T + b.
 */
function groupSwap(f: ForwardContext, sinus: GpuTensor): void {
  const { ws, act, config, clean } = f;
  const D = config.hiddenSize;
  // q0 is built in y's rows; the group swap's output overwrites it there.
  const q0 = activationView(f, act.y, D, 'q0');
  const terms = queryInitTerms(config.preQueryMode);
  f.emit(
    queryInitDispatches(ws, {
      ...terms,
      encoderOut: act.x,
      base: f.param(`${GS}.base_embedding`),
      queryPositions: act.queryPositions,
      sinus,
      stat: act.stat,
      out: q0,
    }),
  );
  if (config.queryProcessMode === 'linear') {
    linear(f, `${GS}.query_processor.weight`, Rows.Query, q0, act.q, {
      bias: true,
      norm: true,
      rotary: act.queryPositions,
    });
  } else {
    const hidden = activationView(f, act.hidden, 4 * D); // [batch, L, 4D]
    linear(f, `${GS}.query_processor.0.weight`, Rows.Query, q0, hidden, { bias: true, norm: true, activation: 'silu' });
    linear(f, `${GS}.query_processor.2.weight`, Rows.Query, hidden, act.q, { bias: true, rotary: act.queryPositions });
  }
  const kv = activationView(f, act.wide, 2 * D, 'kv');
  linear(f, `${GS}.hidden_to_key_value.weight`, clean.rows, clean.stream, kv, {
    bias: true,
    rotary: act.cleanPositions,
  });
  attend(f, GS, Rows.Query, act.q, cleanKeysValues(f, GS, kv));
  linear(f, `${GS}.output_linear.weight`, Rows.Query, act.attn, act.y, { bias: true });
}

/**
 * Every decoder layer's k | v = LN_kv_norm1(E) @ attn_kv^T, keys rotated: per group of layers
 * (fusion.ts) one matmul, LN(E) @ [attn_kv diag(kv_norm1.weight) of each layer]^T, kept as the
 * clean side keeps them.
 */
function decoderKeysValues(f: ForwardContext): { k: GpuTensor; v: GpuTensor }[] {
  const { ws, act, config, clean } = f;
  const D = config.hiddenSize;
  const groups = decoderKvGroups(config, ws.maxBatch, ws.device.limits.maxStorageBufferBindingSize);
  return groups.flatMap(([first, last], g) => {
    const name = decoderKvName(first, last);
    linear(f, name, clean.rows, clean.stream, act.decoderKv[g], { norm: true, rotary: act.cleanPositions });
    const kept = clean.keep(f, name, act.decoderKv[g]);
    return Array.from({ length: last - first + 1 }, (_, i) => ({
      k: columns(kept, 2 * D * i, D, 'k'),
      v: columns(kept, 2 * D * i + D, D, 'v'),
    }));
  });
}

/**
 * y += gate_msa * attn_out(attention(rope(modulate(LN_q_norm1(y)) @ attn_q^T), k, v)), k | v: decoderKeysValues
 * y += gate_mlp * mlp(modulate(LN_norm2(y)))
 */
function decoderLayer(f: ForwardContext, prefix: string, kv: { k: GpuTensor; v: GpuTensor }): void {
  const { act } = f;
  const m = f.mod.blocks.get(prefix)!;
  linear(f, `${prefix}.attn_q.weight`, Rows.Query, act.y, act.q, { norm: true, rotary: act.queryPositions });
  attentionResidual(f, prefix, Rows.Query, act.q, kv, act.y, m);
  mlpResidual(f, prefix, Rows.Query, act.y, m);
}
