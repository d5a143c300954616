/**
 * The bench's dispatches per step (bench/suite.ts timeGeneration) count every dispatch of a
 * step that runs the network, also when its logits take several windows (the full-size models:
 * L1024 at V50258 is 4 windows of 64 MiB), each window adding its output layer and sampler.
 */
import { describe, expect, it } from 'vitest';
import { timeGeneration } from '../../bench/suite.js';
import { GpuModel } from '../../src/model/gpu-model.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';
import { plainSampling, samplePgm, type BatchStep } from '../../src/sampling/samplers.js';
import { testGpu } from '../helpers/gpu.js';

describe('bench: dispatches per step', () => {
  it('one logits window, and windows of 3 rows: the same step plus 2 dispatches per extra window', async () => {
    const gpu = await testGpu();
    const config = tinyConfig('pgm', { vocabSize: 512, hiddenSize: 32, nHeads: 2, condDim: 8, length: 24 });
    const weights = randomWeights(config, 3);
    const measure = async (logitRows?: number) => {
      const model = await GpuModel.load(gpu, config, weights, { maxBatch: 1, logitRows });
      try {
        const queries: number[] = [];
        const options = plainSampling(24, 6);
        const times = await timeGeneration(model, 'pgm', 23, async function* () {
          for await (const step of samplePgm(model, [{ known: new Map([[0, config.bosId]]), seed: 5 }], options)) {
            if (step.forward) queries.push(step.decoderRows[0]);
            yield step as BatchStep;
          }
        });
        return { perStep: times.dispatchesPerStep, forwards: times.forwards, queries };
      } finally {
        model.dispose();
      }
    };
    const one = await measure();
    expect(one.forwards).toBe(6);
    // Every exact PGM step runs the same dispatches; all of them are counted (more than a sampler and a matmul).
    expect(Number.isInteger(one.perStep)).toBe(true);
    expect(one.perStep).toBeGreaterThan(10);
    const windowed = await measure(3);
    expect(windowed.queries).toEqual(one.queries);
    const extra = one.queries.map((q) => Math.ceil(q / 3) - 1);
    expect(extra.some((e) => e > 0)).toBe(true);
    expect(windowed.perStep).toBeCloseTo(one.perStep + (2 * extra.reduce((a, e) => a + e, 0)) / extra.length, 9);
  });
});
