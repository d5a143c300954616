import type { ModelConfig } from './config.js';

/** Sinusoidal time-embedding width fed to `sigma_map.mlp.0`. */
export const TIME_FREQ_DIM = 256;

/** Backbone buffers: recomputed by the engine, never stored in a model directory. */
export const isBuffer = (name: string): boolean => name.endsWith('rotary_emb.inv_freq') || name.endsWith('pos_freqs');

type Shapes = Map<string, number[]>;

function ditBlock(out: Shapes, prefix: string, c: ModelConfig): void {
  const D = c.hiddenSize;
  out.set(`${prefix}.norm1.weight`, [D]);
  out.set(`${prefix}.attn_qkv.weight`, [3 * D, D]);
  out.set(`${prefix}.attn_out.weight`, [D, D]);
  out.set(`${prefix}.norm2.weight`, [D]);
  mlpAndModulation(out, prefix, c);
}

function mlpAndModulation(out: Shapes, prefix: string, c: ModelConfig): void {
  const { hiddenSize: D, mlpDim: F, condDim: C } = c;
  out.set(`${prefix}.mlp.0.weight`, [F, D]);
  out.set(`${prefix}.mlp.0.bias`, [F]);
  out.set(`${prefix}.mlp.2.weight`, [D, F]);
  out.set(`${prefix}.mlp.2.bias`, [D]);
  out.set(`${prefix}.adaLN_modulation.weight`, [6 * D, C]);
  out.set(`${prefix}.adaLN_modulation.bias`, [6 * D]);
}

/**
 * Every trainable parameter of the backbone described by `c`, name -> shape (names as in
 * the state_dict without `backbone.`; see docs/model.md "Parameter names"). A set, not an
 * order: the checkpoint's own state_dict order is authoritative.
 */
export function expectedParameters(c: ModelConfig): Shapes {
  const { vocabSize: V, hiddenSize: D, condDim: C } = c;
  const out: Shapes = new Map();
  out.set('vocab_embed.embedding', [V, D]);
  out.set('sigma_map.mlp.0.weight', [C, TIME_FREQ_DIM]);
  out.set('sigma_map.mlp.0.bias', [C]);
  out.set('sigma_map.mlp.2.weight', [C, C]);
  out.set('sigma_map.mlp.2.bias', [C]);
  if (c.arch === 'mdlm') {
    for (let i = 0; i < c.nBlocks; i++) ditBlock(out, `blocks.${i}`, c);
  } else {
    for (let i = 0; i < c.encoderBlocks; i++) ditBlock(out, `encoder.blocks.${i}`, c);
    const g = 'decoder.group_swap';
    out.set(`${g}.base_embedding`, [1, D]);
    out.set(`${g}.pre_query_norm.weight`, [D]);
    out.set(`${g}.pre_query_norm.bias`, [D]);
    if (c.queryProcessMode === 'linear') {
      out.set(`${g}.query_processor.weight`, [D, D]);
      out.set(`${g}.query_processor.bias`, [D]);
    } else {
      out.set(`${g}.query_processor.0.weight`, [4 * D, D]);
      out.set(`${g}.query_processor.0.bias`, [4 * D]);
      out.set(`${g}.query_processor.2.weight`, [D, 4 * D]);
      out.set(`${g}.query_processor.2.bias`, [D]);
    }
    out.set(`${g}.hidden_to_key_value.weight`, [2 * D, D]);
    out.set(`${g}.hidden_to_key_value.bias`, [2 * D]);
    out.set(`${g}.output_linear.weight`, [D, D]);
    out.set(`${g}.output_linear.bias`, [D]);
    for (let i = 0; i < c.decoderBlocks; i++) {
      const p = `decoder.layers.${i}`;
      out.set(`${p}.q_norm1.weight`, [D]);
      out.set(`${p}.kv_norm1.weight`, [D]);
      out.set(`${p}.norm2.weight`, [D]);
      out.set(`${p}.attn_q.weight`, [D, D]);
      out.set(`${p}.attn_kv.weight`, [2 * D, D]);
      out.set(`${p}.attn_out.weight`, [D, D]);
      mlpAndModulation(out, p, c);
    }
  }
  out.set('output_layer.norm_final.weight', [D]);
  out.set('output_layer.linear.weight', [V, D]);
  out.set('output_layer.linear.bias', [V]);
  out.set('output_layer.adaLN_modulation.weight', [2 * D, C]);
  out.set('output_layer.adaLN_modulation.bias', [2 * D]);
  return out;
}

const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/**
 * Compare actual parameter shapes with what `c` implies. Returns one line per problem
 * (missing, unexpected, wrong shape), empty when they agree.
 */
export function parameterMismatches(c: ModelConfig, actual: ReadonlyMap<string, readonly number[]>): string[] {
  // Every block has at least 10 tensors: a config claiming more blocks than there are tensors
  // (a damaged or hostile config.json) cannot match, and listing its names would not end.
  const blocks = c.arch === 'pgm' ? c.encoderBlocks + c.decoderBlocks : c.nBlocks;
  if (blocks > actual.size) return [`the config describes ${blocks} blocks, but there are only ${actual.size} tensors`];
  const expected = expectedParameters(c);
  const problems: string[] = [];
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const unexpected = [...actual.keys()].filter((k) => !expected.has(k) && !isBuffer(k));
  const list = (names: string[]): string =>
    names.slice(0, 5).join(', ') + (names.length > 5 ? `, ... (${names.length} in all)` : '');
  if (missing.length) problems.push(`missing ${list(missing)}`);
  if (unexpected.length) problems.push(`unexpected ${list(unexpected)}`);
  for (const [name, shape] of expected) {
    const got = actual.get(name);
    if (got && !sameShape(got, shape))
      problems.push(`${name} has shape [${got.join(', ')}], expected [${shape.join(', ')}]`);
  }
  return problems;
}

/**
 * How many values and tensors the backbone `c` describes has, without listing its names (a
 * hostile config.json may claim 1e308 blocks): the model without blocks plus each kind of block
 * times its count. Infinity where the counts overflow.
 */
export function parameterTotals(c: ModelConfig): { values: number; tensors: number } {
  const totals = (blocks: Partial<ModelConfig>) => {
    const shapes = expectedParameters({ ...c, ...blocks });
    return { values: [...shapes.values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1), 0), tensors: shapes.size };
  };
  const kinds: [Partial<ModelConfig>, number][] =
    c.arch === 'pgm'
      ? [
          [{ encoderBlocks: 1, decoderBlocks: 0 }, c.encoderBlocks],
          [{ encoderBlocks: 0, decoderBlocks: 1 }, c.decoderBlocks],
        ]
      : [[{ nBlocks: 1 }, c.nBlocks]];
  const base = totals({ encoderBlocks: 0, decoderBlocks: 0, nBlocks: 0 });
  const out = { ...base };
  for (const [one, count] of kinds) {
    const block = totals(one);
    out.values += (block.values - base.values) * count;
    out.tensors += (block.tensors - base.tensors) * count;
  }
  return out;
}
