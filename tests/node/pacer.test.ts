/**
 * Readback pacing (src/gpu/pacer.ts): the pacer sleeps through most of the wait it learned for
 * a kind and size of work before it asks, never sleeps on work smaller than any it has seen,
 * backs off when its sleep outlasted the work, and leaves short waits alone. Then a Node model
 * (whose readbacks are paced) draws the same tokens as one that is not, and its pacer slept.
 */
import { describe, expect, it } from 'vitest';
import { MIN_PACED_MS, OVERSLEPT, ReadbackPacer, SLEEP_FRACTION } from '../../src/gpu/pacer.js';
import { GpuModel } from '../../src/model/gpu-model.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';
import { samplePgm } from '../../src/sampling/samplers.js';
import { testGpu } from '../helpers/gpu.js';

const after = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One wait on work that is done `workMs` after submit: when the pacer asked, in ms after submit. */
async function waitOn(pacer: ReadbackPacer, key: string, work: number, workMs: number): Promise<number> {
  const submitted = performance.now();
  const done = workMs ? after(workMs) : Promise.resolve();
  let asked = NaN;
  await pacer.wait({ key, work }, submitted, () => {
    asked = performance.now() - submitted;
    return done;
  });
  return asked;
}

describe('ReadbackPacer', () => {
  it('asks at once the first time, then after SLEEP_FRACTION of what that work took', async () => {
    const pacer = new ReadbackPacer();
    expect(await waitOn(pacer, 'step', 10, 40)).toBeLessThan(15);
    const learned = pacer.expectedMs({ key: 'step', work: 10 })!;
    // Node's timers may fire a little early against performance.now(): margins of a few ms.
    expect(learned).toBeGreaterThanOrEqual(36);
    const asked = await waitOn(pacer, 'step', 10, 40);
    expect(asked).toBeGreaterThanOrEqual(SLEEP_FRACTION * learned - 3);
    expect(pacer.counts).toEqual({ waits: 2, slept: 1, overslept: 0 });
  });

  it('expects more work to take what the largest smaller work took; less work, or another key, is not paced', async () => {
    const pacer = new ReadbackPacer();
    await waitOn(pacer, 'step', 10, 30);
    await waitOn(pacer, 'step', 20, 60);
    expect(pacer.expectedMs({ key: 'step', work: 15 })).toBe(pacer.expectedMs({ key: 'step', work: 10 }));
    expect(pacer.expectedMs({ key: 'step', work: 500 })).toBe(pacer.expectedMs({ key: 'step', work: 20 }));
    expect(pacer.expectedMs({ key: 'step', work: 9 })).toBeUndefined();
    expect(pacer.expectedMs({ key: 'logits', work: 10 })).toBeUndefined();
    expect(await waitOn(pacer, 'step', 9, 30)).toBeLessThan(15);
    expect(await waitOn(pacer, 'logits', 10, 30)).toBeLessThan(15);
  });

  it('a sleep that outlasted the work drops that work\'s expectation to OVERSLEPT of the sleep', async () => {
    const pacer = new ReadbackPacer();
    await waitOn(pacer, 'step', 10, 60);
    const asked = await waitOn(pacer, 'step', 10, 5);
    expect(asked).toBeGreaterThan(40);
    expect(pacer.counts.overslept).toBe(1);
    expect(pacer.expectedMs({ key: 'step', work: 10 })).toBeCloseTo(OVERSLEPT * asked, 0);
  });

  it('a wait that starts while another is under way (a step in flight) is learned apart', async () => {
    const pacer = new ReadbackPacer();
    const first = waitOn(pacer, 'step', 10, 30);
    await waitOn(pacer, 'step', 10, 60);
    await first;
    const alone = pacer.expectedMs({ key: 'step', work: 10 })!;
    const behind = pacer.expectedMs({ key: 'step', work: 10 }, true)!;
    expect(alone).toBeGreaterThanOrEqual(26);
    expect(behind).toBeGreaterThanOrEqual(56);
    expect(behind).not.toBe(alone);
  });

  it(`waits expected under ${MIN_PACED_MS} ms are not paced`, async () => {
    const pacer = new ReadbackPacer();
    // Work that is done 1.5 ms after submit, timed by spinning here rather than by a timer.
    const wait = () => {
      const submitted = performance.now();
      return pacer.wait({ key: 'step', work: 10 }, submitted, async () => {
        while (performance.now() - submitted < 1.5);
      });
    };
    await wait();
    const learned = pacer.expectedMs({ key: 'step', work: 10 })!;
    expect(learned).toBeLessThan(MIN_PACED_MS);
    expect(SLEEP_FRACTION * learned).toBeGreaterThanOrEqual(1); // long enough a sleep, were it paced
    await wait();
    expect(pacer.counts).toEqual({ waits: 2, slept: 0, overslept: 0 });
  });
});

describe('paced readbacks in Node', () => {
  it('a paced model draws the tokens an unpaced one draws, and its pacer slept through waits', async () => {
    const gpu = await testGpu();
    expect(gpu.paceReadbacks).toBe(true);
    // Large enough that a step takes several ms on a CPU adapter.
    const config = tinyConfig('pgm', { vocabSize: 8192, hiddenSize: 128, nHeads: 4, condDim: 8, length: 64 });
    const weights = randomWeights(config, 3);
    const generate = async (paced: boolean) => {
      const model = await GpuModel.load({ ...gpu, paceReadbacks: paced }, config, weights);
      try {
        const options = { length: 64, steps: 16, order: 'random', schedule: 'uniform', temperature: 1, topP: 1, greedy: false, encoder: 'exact', refresh: 0 } as const;
        const tokens: number[][] = [];
        for (let rep = 0; rep < 2; rep++) {
          for await (const step of samplePgm(model, [{ known: new Map([[0, config.bosId]]), seed: 5 }], options)) tokens.push([...step.tokens[0]]);
        }
        return { tokens, counts: model.ws.memory.pacer?.counts };
      } finally {
        model.dispose();
      }
    };
    const paced = await generate(true);
    const unpaced = await generate(false);
    expect(paced.tokens).toEqual(unpaced.tokens);
    expect(unpaced.counts).toBeUndefined();
    expect(paced.counts!.waits).toBe(32);
    expect(paced.counts!.slept).toBeGreaterThan(0);
  });
});
