import { describe, expect, it } from 'vitest';
import { ANY_SHAPE, everyBucket } from '../../src/kernels/plan.js';
import type { ModelConfig } from '../../src/weights/config.js';
import { GpuModel } from '../../src/model/gpu-model.js';
import type { PgmSequence } from '../../src/model/inputs.js';
import { encodeFloats } from '../../src/weights/floats.js';
import { floatsOf, type HostTensor, type StoredTensor, type WeightMap } from '../../src/weights/host-tensor.js';
import { referenceMdlmLogits, referencePgmLogits } from '../../src/reference/forward.js';
import { randomWeights, seededUniform, tinyConfig } from '../../src/reference/random.js';
import { compareRows, runtime, testGpu } from '../helpers/gpu.js';

/** A sequence with n clean tokens and m queries at distinct random positions (BOS at 0). */
function randomSequence(config: ModelConfig, n: number, m: number, seed: number): PgmSequence {
  const rand = seededUniform(seed);
  const order = Array.from({ length: config.length - 1 }, (_, i) => i + 1);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const positions = [0, ...order.slice(0, n - 1)];
  const tokens = positions.map((p) => (p === 0 ? config.bosId : Math.floor(rand() * (config.vocabSize - 2))));
  return { tokens, positions, queries: order.slice(n - 1, n - 1 + m) };
}

describe(`PGM forward on WebGPU (${runtime}) vs the TypeScript reference`, () => {
  const cases: [string, Partial<ModelConfig>, [number, number][]][] = [
    [
      'learn+freqs, linear, padded batch',
      {},
      [
        [5, 3],
        [17, 9],
        [1, 12],
      ],
    ],
    [
      'learn, mlp4, odd sizes',
      { preQueryMode: 'learn', queryProcessMode: 'mlp4', hiddenSize: 36, nHeads: 3, vocabSize: 71, length: 37 },
      [
        [3, 33],
        [36, 1],
      ],
    ],
    [
      'learn+freqs+mean, 3 enc / 1 dec',
      { preQueryMode: 'learn+freqs+mean', encoderBlocks: 3, decoderBlocks: 1 },
      [
        [40, 23],
        [2, 2],
      ],
    ],
    [
      'learn+freqs+logsumexp, mlp4, D % 4 != 0',
      { preQueryMode: 'learn+freqs+logsumexp', queryProcessMode: 'mlp4', hiddenSize: 30, nHeads: 5, length: 29 },
      [
        [1, 28],
        [28, 1],
      ],
    ],
    ['first sampling step: BOS only, L-1 queries', { length: 48 }, [[1, 47]]],
    ['last sampling step: L-1 clean tokens, 1 query', { length: 48 }, [[47, 1]]],
  ];
  for (const [name, overrides, shapes] of cases) {
    it(name, async () => {
      const gpu = await testGpu();
      const config = tinyConfig('pgm', overrides);
      const weights = randomWeights(config, 7);
      const sequences = shapes.map(([n, m], b) => randomSequence(config, n, m, 100 + b));
      const model = await GpuModel.load(gpu, config, weights, { maxBatch: sequences.length });
      try {
        const got = await model.pgmLogits(sequences);
        const want = referencePgmLogits(config, weights, sequences);
        const { maxAbs, argmaxMismatches } = compareRows(got, want, config.vocabSize);
        expect(maxAbs).toBeLessThan(1e-4);
        expect(argmaxMismatches).toBe(0);
      } finally {
        model.dispose();
      }
    });
  }
});

describe(`PGM forward with forced kernel variants (${runtime}) vs the TypeScript reference`, () => {
  it('tiled matmul + flash attention, padded batch, D % 4 != 0', async () => {
    const gpu = await testGpu();
    const config = tinyConfig('pgm', { hiddenSize: 30, nHeads: 5, length: 29 });
    const weights = randomWeights(config, 7);
    const sequences = [
      [1, 28],
      [28, 1],
      [9, 5],
    ].map(([n, m], b) => randomSequence(config, n, m, 100 + b));
    const model = await GpuModel.load(gpu, config, weights, {
      maxBatch: sequences.length,
      matmul: 'tiled',
      attention: 'flash',
    });
    try {
      expect(model.ws.plan).toEqual({ matmul: { [ANY_SHAPE]: everyBucket('tiled') }, attention: everyBucket('flash') });
      const { maxAbs, argmaxMismatches } = compareRows(
        await model.pgmLogits(sequences),
        referencePgmLogits(config, weights, sequences),
        config.vocabSize,
      );
      expect(maxAbs).toBeLessThan(1e-4);
      expect(argmaxMismatches).toBe(0);
    } finally {
      model.dispose();
    }
  });
});

describe(`MDLM forward on WebGPU (${runtime}) vs the TypeScript reference`, () => {
  it('batch of 2, odd length, masks', async () => {
    const gpu = await testGpu();
    const config = tinyConfig('mdlm', { nBlocks: 3, length: 45, hiddenSize: 44, nHeads: 2 });
    const weights = randomWeights(config, 3);
    const rand = seededUniform(5);
    const sequences = [0, 1].map(() => ({
      tokens: Array.from({ length: 41 }, (_, i) =>
        i === 0 ? config.bosId : rand() < 0.5 ? config.maskId : Math.floor(rand() * (config.vocabSize - 2)),
      ),
    }));
    const model = await GpuModel.load(gpu, config, weights, { maxBatch: 2 });
    try {
      const got = await model.mdlmLogits(sequences);
      const want = referenceMdlmLogits(config, weights, sequences);
      const { maxAbs, argmaxMismatches } = compareRows(got, want, config.vocabSize);
      expect(maxAbs).toBeLessThan(1e-4);
      expect(argmaxMismatches).toBe(0);
    } finally {
      model.dispose();
    }
  });
});

/** Weights as a file stores them with the tensors `only` picks in f16, and the float32 values they then hold. */
function asHalfFile(
  weights: WeightMap,
  only: (name: string, shape: number[]) => boolean = () => true,
): { file: Map<string, HostTensor | StoredTensor>; values: WeightMap } {
  const file = new Map<string, HostTensor | StoredTensor>();
  const values: WeightMap = new Map();
  for (const [name, t] of weights) {
    const stored: HostTensor | StoredTensor = only(name, t.shape)
      ? { shape: t.shape, dtype: 'F16', bytes: encodeFloats(t.data, 'F16') }
      : t;
    file.set(name, stored);
    values.set(name, { shape: t.shape, data: floatsOf(stored) });
  }
  return { file, values };
}

describe(`f16 weight storage (${runtime})`, () => {
  const config = tinyConfig('pgm', { hiddenSize: 30, nHeads: 5, length: 29, vocabSize: 67 });
  const sequences = [
    [1, 28],
    [28, 1],
    [9, 5],
  ].map(([n, m], b) => randomSequence(config, n, m, 100 + b));

  // Bit for bit with the same kernels: the plan may pick other variants for f16 weights, which
  // sum a row's LayerNorm statistics in another order.
  it("f16 tensors: 'auto' keeps the matmul weights and the embedding f16 and gives the logits of 'f32' storage exactly", async () => {
    const gpu = await testGpu();
    const { file, values } = asHalfFile(randomWeights(config, 7));
    const half = await GpuModel.load(gpu, config, file, { maxBatch: 3, matmul: 'register' });
    const full = await GpuModel.load(gpu, config, file, { maxBatch: 3, weightStorage: 'f32', matmul: 'register' });
    try {
      expect(half.gpuBytes).toBeLessThan(full.gpuBytes);
      const got = await half.pgmLogits(sequences);
      expect(Array.from(got)).toEqual(Array.from(await full.pgmLogits(sequences)));
      const { maxAbs } = compareRows(got, referencePgmLogits(config, values, sequences), config.vocabSize);
      expect(maxAbs).toBeLessThan(1e-4);
    } finally {
      half.dispose();
      full.dispose();
    }
  });

  it("'f16' rounds f32 matmul weights and the embedding to f16: the reference on the rounded weights agrees", async () => {
    const gpu = await testGpu();
    const weights = randomWeights(config, 8);
    const model = await GpuModel.load(gpu, config, weights, { maxBatch: 3, weightStorage: 'f16' });
    try {
      const rounded = asHalfFile(
        weights,
        (name, shape) =>
          shape.length === 2 &&
          (name.endsWith('.weight') || name === 'vocab_embed.embedding') &&
          !name.includes('adaLN') &&
          !name.startsWith('sigma_map'),
      ).values;
      const { maxAbs, argmaxMismatches } = compareRows(
        await model.pgmLogits(sequences),
        referencePgmLogits(config, rounded, sequences),
        config.vocabSize,
      );
      expect(maxAbs).toBeLessThan(1e-4);
      expect(argmaxMismatches).toBe(0);
    } finally {
      model.dispose();
    }
  });

  it('an unknown weightStorage is a typed option error', async () => {
    const gpu = await testGpu();
    await expect(
      GpuModel.load(gpu, config, randomWeights(config, 7), { weightStorage: 'bf16' as never }),
    ).rejects.toMatchObject({ code: 'option' });
  });
});

describe(`PGM weights streamed in (${runtime})`, () => {
  const config = tinyConfig('pgm', { decoderBlocks: 3, hiddenSize: 30, nHeads: 5, length: 29 });
  const weights = randomWeights(config, 9);
  /** The tensors in a seeded random order, one at a time (as a model directory's shards are read). */
  function shuffled(
    seed: number,
    drop?: string,
  ): { names: string[]; stream: AsyncIterable<readonly [string, HostTensor | StoredTensor]> } {
    const rand = seededUniform(seed);
    const names = [...weights.keys()].filter((n) => n !== drop);
    for (let i = names.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [names[i], names[j]] = [names[j], names[i]];
    }
    const stream = (async function* () {
      for (const name of names) {
        await Promise.resolve();
        yield [name, weights.get(name)!] as const;
      }
    })();
    return { names, stream };
  }

  it("in any order (a decoder layer's attn_kv before its kv_norm1 and after): the logits of the same weights in a map", async () => {
    const gpu = await testGpu();
    const { names, stream } = shuffled(3);
    const before = (a: string, b: string) => names.indexOf(a) < names.indexOf(b);
    const kvFirst = [0, 1, 2].map((l) =>
      before(`decoder.layers.${l}.attn_kv.weight`, `decoder.layers.${l}.kv_norm1.weight`),
    );
    expect(kvFirst, 'the order has both cases').toEqual(expect.arrayContaining([true, false]));
    const sequences = [
      [1, 28],
      [28, 1],
      [9, 5],
    ].map(([n, m], b) => randomSequence(config, n, m, 100 + b));
    const streamed = await GpuModel.load(gpu, config, stream, { maxBatch: 3 });
    const mapped = await GpuModel.load(gpu, config, weights, { maxBatch: 3 });
    try {
      const got = await streamed.pgmLogits(sequences);
      expect(Array.from(got)).toEqual(Array.from(await mapped.pgmLogits(sequences)));
      const { maxAbs, argmaxMismatches } = compareRows(
        got,
        referencePgmLogits(config, weights, sequences),
        config.vocabSize,
      );
      expect(maxAbs).toBeLessThan(1e-4);
      expect(argmaxMismatches).toBe(0);
    } finally {
      streamed.dispose();
      mapped.dispose();
    }
  });

  it('a decoder layer without its kv_norm1 or attn_kv weight is a typed architecture error naming it', async () => {
    const gpu = await testGpu();
    for (const missing of ['decoder.layers.1.kv_norm1.weight', 'decoder.layers.2.attn_kv.weight']) {
      await expect(GpuModel.load(gpu, config, shuffled(4, missing).stream), missing).rejects.toMatchObject({
        code: 'architecture',
        message: `the model has no tensor ${missing}`,
      });
    }
  });
});
