/**
 * The released models' vocabulary and width (V = 50258, D = 768, 12 heads, F = 3072; one block
 * each side and a short length, so that the test stays fast) on a device with WebGPU's default
 * limits: in f32 the embedding and the output layer (154 MB each) are over one 128 MiB storage
 * binding and run in blocks of rows, and the logits are computed, sampled and read back in
 * windows of a few rows. f32 and f16 storage against the TypeScript reference, and one greedy
 * sampling step against the reference's argmax.
 */
import { describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../src/weights/config.js';
import { encodeFloats, floatToHalf } from '../../src/weights/floats.js';
import { GpuModel, type GpuModelOptions } from '../../src/model/gpu-model.js';
import type { MdlmSequence, PgmSequence } from '../../src/model/inputs.js';
import { floatsOf, type StoredTensor, type WeightMap } from '../../src/weights/host-tensor.js';
import { referenceMdlmLogits, referencePgmLogits } from '../../src/reference/forward.js';
import { randomWeights, seededNormal, tinyConfig } from '../../src/reference/random.js';
import { compareRows, runtime, testGpuWithDefaultLimits } from '../helpers/gpu.js';

const V = 50258;
const D = 768;
const shape = { vocabSize: V, hiddenSize: D, nHeads: 12, condDim: 32, mlpDim: 4 * D };
const pgmConfig = tinyConfig('pgm', { ...shape, length: 24, encoderBlocks: 1, decoderBlocks: 1 });
const mdlmConfig = tinyConfig('mdlm', { ...shape, length: 12, nBlocks: 1 });
const DEFAULT_BINDING = 128 * 2 ** 20;
// Fixed kernel variants: measuring a plan for these shapes would cost a cold run far more than the test.
const variants: GpuModelOptions = { matmul: 'register', attention: 'thread' };

/** n f16 values of a normal distribution with deviation `std` (4096 of them drawn, then picked by xorshift: fast for 38M). */
function halfNormals(n: number, std: number, seed: number): Uint16Array {
  const normal = seededNormal(seed);
  const table = Uint16Array.from({ length: 4096 }, () => floatToHalf(std * normal()));
  const out = new Uint16Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = table[s & 4095];
  }
  return out;
}

const stored = (shape: number[], bits: Uint16Array): StoredTensor => ({
  shape,
  dtype: 'F16',
  bytes: new Uint8Array(bits.buffer),
});

// The two [V, D] tensors, shared by both models.
let big: Map<string, StoredTensor> | undefined;

/**
 * A model's tensors as an f16 file stores them, and the same values as float32: the smaller
 * tensors as randomWeights makes them (at a small vocabulary: they do not depend on V), the
 * [V, D] embedding and output layer drawn once.
 */
function model(config: ModelConfig, seed: number): { file: Map<string, StoredTensor>; values: WeightMap } {
  big ??= new Map([
    ['vocab_embed.embedding', stored([V, D], halfNormals(V * D, 1, 3))],
    ['output_layer.linear.weight', stored([V, D], halfNormals(V * D, 1 / Math.sqrt(D), 4))],
  ]);
  const file = new Map<string, StoredTensor>(big);
  file.set('output_layer.linear.bias', stored([V], halfNormals(V, 0.1, 5)));
  for (const [name, t] of randomWeights({ ...config, vocabSize: 67, maskId: 66, bosId: 65 }, seed)) {
    if (!file.has(name) && !name.startsWith('output_layer.linear.'))
      file.set(name, { shape: t.shape, dtype: 'F16', bytes: encodeFloats(t.data, 'F16') });
  }
  const values: WeightMap = new Map([...file].map(([name, t]) => [name, { shape: t.shape, data: floatsOf(t) }]));
  return { file, values };
}

/** Row r's argmax over the tokens a draw may take (not the mask), and its lead over the runner-up. */
function argmax(logits: Float32Array, r: number, maskId: number): { token: number; lead: number } {
  let [token, best, second] = [-1, -Infinity, -Infinity];
  for (let v = 0; v < V; v++) {
    const x = logits[r * V + v];
    if (v === maskId) continue;
    if (x > best) [token, best, second] = [v, x, best];
    else if (x > second) second = x;
  }
  return { token, lead: best - second };
}

/** Greedy draws equal the reference's argmax wherever the reference's lead is clear of rounding. */
function expectArgmax(drawn: Int32Array, reference: Float32Array, rows: number[], maskId: number): void {
  const clear = rows.filter((r) => argmax(reference, r, maskId).lead > 1e-3);
  expect(clear.length).toBeGreaterThan(rows.length / 2);
  expect(clear.map((r) => drawn[r])).toEqual(clear.map((r) => argmax(reference, r, maskId).token));
}

const settings = { step: 0, temperature: 1, topP: 1, greedy: true, pReveal: 1, append: true };

describe(`V = 50258, D = 768 within WebGPU's default limits (${runtime})`, () => {
  it('PGM, f32 (embedding and output layer in blocks of rows) and f16 storage, logits in windows of 3 rows', async () => {
    const gpu = await testGpuWithDefaultLimits();
    expect(gpu.device.limits.maxStorageBufferBindingSize).toBe(DEFAULT_BINDING);
    const { file, values } = model(pgmConfig, 7);
    const sequences: PgmSequence[] = [
      { tokens: [50256, 464, 2068, 7586, 21831], positions: [0, 1, 2, 3, 9], queries: [4, 5, 6, 7, 8, 17, 23] },
      { tokens: [50256, 40, 1101], positions: [0, 5, 2], queries: [1, 20] },
    ];
    const want = referencePgmLogits(pgmConfig, values, sequences);
    const options: GpuModelOptions = { ...variants, maxBatch: 2, logitRows: 3 };
    for (const [weights, storage] of [
      [values, 'f32'],
      [file, 'f16'],
    ] as const) {
      const m = await GpuModel.load(gpu, pgmConfig, weights, options);
      try {
        const { maxAbs, argmaxMismatches } = compareRows(await m.pgmLogits(sequences), want, V);
        expect(maxAbs, `${storage} storage`).toBeLessThan(1e-4);
        expect(argmaxMismatches).toBe(0);
        // One sampling step over the same batch: the draws of every window.
        sequences.forEach((s, b) => {
          m.writeClean(b, 0, s.tokens, s.positions);
          m.writeQueries(b, s.queries);
        });
        m.setLengths(
          sequences.map((s) => s.tokens.length),
          sequences.map((s) => s.queries.length),
        );
        m.writeSeeds([1, 2]);
        const { tokens, rowsPerSeq } = await m.sampleStep(settings);
        expect(rowsPerSeq).toBe(7);
        expectArgmax(tokens, want, [0, 1, 2, 3, 4, 5, 6, 7, 8], pgmConfig.maskId);
      } finally {
        m.dispose();
      }
    }
  });

  it('MDLM in f16, logits in windows of 5 rows, a step with and one without a forward pass', async () => {
    const gpu = await testGpuWithDefaultLimits();
    const { file, values } = model(mdlmConfig, 8);
    const mask = mdlmConfig.maskId;
    const sequences: MdlmSequence[] = [
      { tokens: [50256, 464, mask, mask, 7586, mask, mask, mask, 13, mask, mask, mask] },
    ];
    const want = referenceMdlmLogits(mdlmConfig, values, sequences);
    const m = await GpuModel.load(gpu, mdlmConfig, file, { ...variants, logitRows: 5 });
    try {
      const { maxAbs, argmaxMismatches } = compareRows(await m.mdlmLogits(sequences), want, V);
      expect(maxAbs).toBeLessThan(1e-4);
      expect(argmaxMismatches).toBe(0);
      m.writeClean(
        0,
        0,
        sequences[0].tokens,
        Array.from({ length: 12 }, (_, i) => i),
      );
      m.setLengths([12], []);
      m.writeSeeds([3]);
      const { tokens } = await m.sampleStep({ ...settings, append: false });
      const masked = [2, 3, 5, 6, 7, 9, 10, 11];
      expect([0, 1, 4, 8].map((r) => tokens[r])).toEqual([-1, -1, -1, -1]);
      expectArgmax(tokens, want, masked, mask);
      // A step without a forward pass (nothing revealed since): the output layer runs again,
      // window by window, from the rows the last pass left, and draws the same.
      m.writeClean(
        0,
        0,
        sequences[0].tokens,
        Array.from({ length: 12 }, (_, i) => i),
      );
      expect((await m.sampleStep({ ...settings, append: false }, 'none')).tokens).toEqual(tokens);
    } finally {
      m.dispose();
    }
  });
});
