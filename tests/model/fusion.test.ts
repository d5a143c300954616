/** model/fusion.ts: the weight layouts and groupings the fused kernels read (their GPU results: tests/gpu/). */
import { describe, expect, it } from 'vitest';
import { encodeFloats } from '../../src/weights/floats.js';
import {
  decoderKeysValues,
  decoderKvGroups,
  decoderKvLayer,
  decoderKvName,
  isLayerNormParam,
  layerNormBefore,
  pairRotaryRows,
  rotaryColumns,
} from '../../src/model/fusion.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';

describe('model/fusion.ts', () => {
  const config = tinyConfig('pgm', { hiddenSize: 12, nHeads: 3, decoderBlocks: 3, length: 10 });
  const weights = randomWeights(config, 3);
  const get = (name: string) => weights.get(name)!;

  it("groups the decoder layers so that each group's keys and values fit one binding", () => {
    const perLayer = 2 * 10 * 2 * 12 * 4; // maxBatch 2, L 10, 2D floats
    expect(decoderKvGroups(config, 2, 3 * perLayer)).toEqual([[0, 2]]);
    expect(decoderKvGroups(config, 2, 2 * perLayer + 4)).toEqual([
      [0, 1],
      [2, 2],
    ]);
    expect(decoderKvGroups(config, 2, perLayer - 1)).toEqual([
      [0, 0],
      [1, 1],
      [2, 2],
    ]);
  });

  it("stacks the decoder layers' attn_kv, each scaled by its kv_norm1 weight along K, its keys rotated", () => {
    const D = config.hiddenSize;
    const fused = decoderKeysValues(config, 1, 2, get);
    expect(fused.shape).toEqual([2 * 2 * D, D]);
    const stacked = new Float32Array(2 * 2 * D * D);
    for (const layer of [1, 2]) {
      const W = get(`decoder.layers.${layer}.attn_kv.weight`).data;
      const w = get(`decoder.layers.${layer}.kv_norm1.weight`).data;
      stacked.set(
        W.map((x, i) => x * w[i % D]),
        (layer - 1) * 2 * D * D,
      );
    }
    expect(Array.from(fused.data)).toEqual(Array.from(stacked));
    expect(rotaryColumns(config, decoderKvName(1, 2))).toEqual({ period: 2 * D, count: D });
    expect(layerNormBefore(decoderKvName(1, 2))).toBe('decoder.layers.kv_norm');
    expect([
      decoderKvLayer('decoder.layers.2.attn_kv.weight'),
      decoderKvLayer(decoderKvName(1, 2)),
      decoderKvLayer('decoder.layers.2.attn_q.weight'),
    ]).toEqual([2, undefined, undefined]);
  });

  it("pairs each head's rotated rows (2i <- i, 2i + 1 <- i + dh/2) and leaves the others, of float32 values or of stored bytes", () => {
    const data = Float32Array.from([0, 1, 2, 3, 4, 5]);
    expect(Array.from(pairRotaryRows({ shape: [6, 1], data }, 4, { period: 6, count: 4 }).data)).toEqual([
      0, 2, 1, 3, 4, 5,
    ]);
    const stored = {
      shape: [6, 2],
      dtype: 'F16' as const,
      bytes: encodeFloats(
        Float32Array.from({ length: 12 }, (_, i) => i),
        'F16',
      ),
    };
    const paired = pairRotaryRows(stored, 4, { period: 6, count: 4 });
    expect([paired.dtype, paired.shape]).toEqual(['F16', [6, 2]]);
    expect(Array.from(new Uint16Array(paired.bytes.buffer, paired.bytes.byteOffset, 12))).toEqual(
      Array.from(new Uint16Array(stored.bytes.buffer, stored.bytes.byteOffset, 12)).map(
        (_, i, all) => all[2 * [0, 2, 1, 3, 4, 5][Math.floor(i / 2)] + (i % 2)],
      ),
    );
  });

  it("keeps every LayerNorm's weight and bias on the host, and no other tensor", () => {
    for (const name of [
      'encoder.blocks.0.norm1.weight',
      'decoder.layers.1.q_norm1.weight',
      'decoder.layers.1.kv_norm1.weight',
      'blocks.3.norm2.weight',
      'decoder.group_swap.pre_query_norm.bias',
      'output_layer.norm_final.weight',
    ]) {
      expect(isLayerNormParam(name, [12]), name).toBe(true);
    }
    for (const [name, shape] of [
      ['decoder.layers.1.attn_kv.weight', [24, 12]],
      ['output_layer.linear.bias', [12]],
      ['vocab_embed.embedding', [10, 12]],
    ] as const) {
      expect(isLayerNormParam(name, shape), name).toBe(false);
    }
  });

  it("names the LayerNorm each matmul's prologue applies", () => {
    expect(layerNormBefore('encoder.blocks.1.attn_qkv.weight')).toBe('encoder.blocks.1.norm1');
    expect(layerNormBefore('blocks.0.mlp.0.weight')).toBe('blocks.0.norm2');
    expect(layerNormBefore('decoder.layers.2.attn_q.weight')).toBe('decoder.layers.2.q_norm1');
    expect(layerNormBefore('decoder.group_swap.query_processor.0.weight')).toBe('decoder.group_swap.pre_query_norm');
    expect(layerNormBefore('output_layer.linear.weight')).toBe('output_layer.norm_final');
    expect(layerNormBefore('decoder.layers.0.attn_out.weight')).toBeUndefined();
  });
});
