/**
 * Models nap while they wait for the GPU in Node (src/gpu/nap.ts), not in a browser, and a
 * napping model draws the tokens a busy-polling one draws.
 */
import { describe, expect, it } from 'vitest';
import { GpuModel } from '../../src/model/gpu-model.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';
import { plainSampling, samplePgm } from '../../src/sampling/samplers.js';
import { runtime, testGpu } from '../helpers/gpu.js';

describe(`napping while waiting (${runtime})`, () => {
  it('a model naps in Node and not in Chromium, and draws the same tokens either way', async () => {
    const gpu = await testGpu();
    const config = tinyConfig('pgm', { vocabSize: 512, hiddenSize: 32, nHeads: 2, condDim: 8, length: 24 });
    const weights = randomWeights(config, 3);
    const generate = async (naps?: boolean) => {
      const model = await GpuModel.load({ ...gpu, napWhileWaiting: naps }, config, weights);
      try {
        const options = plainSampling(24, 6);
        const tokens: number[][] = [];
        for await (const step of samplePgm(model, [{ known: new Map([[0, config.bosId]]), seed: 5 }], options))
          tokens.push([...step.tokens[0]]);
        return { tokens, naps: model.ws.memory.naps };
      } finally {
        model.dispose();
      }
    };
    const byDefault = await generate();
    const busy = await generate(false);
    expect(byDefault.naps).toBe(runtime === 'node');
    expect(busy.naps).toBe(false);
    expect(byDefault.tokens).toEqual(busy.tokens);
    expect(byDefault.tokens.length).toBe(6);
  });
});
