/**
 * A long-running page: 100 generations on one engine leave its GPU bytes exactly where they
 * were and the JS heap flat, every buffer the engine creates is accounted for, and dispose()
 * frees all of it. Node only: it forces garbage collection through V8's flags.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine.js';
import { PgmError } from '../../src/errors.js';
import { Vocabulary } from '../../src/text/vocab.js';
import { requestNodeGpu } from '../../src/node.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const vocabulary = Vocabulary.fromCounts(new Uint32Array(50257), 300);
const config = tinyConfig('pgm', {
  vocabSize: 300,
  hiddenSize: 16,
  nHeads: 2,
  condDim: 8,
  length: 16,
  vocabMap: [...vocabulary.vocabMap],
});

/** Heap after a full collection (twice: finalizers of the first can free more). */
function settledHeap(): { heap: number; arrayBuffers: number } {
  gc();
  gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, arrayBuffers: m.arrayBuffers };
}

/** Heap growth allowed over 100 generations: a leak of one step's events or tensors per generation would exceed it. */
const HEAP_MARGIN = 1 << 20;

describe('memory over a long run', () => {
  it('100 generations: GPU bytes exactly flat, every buffer accounted, heap flat; dispose() frees everything', async () => {
    const ctx = await requestNodeGpu();
    // Every buffer created on this device and not yet destroyed, with its size.
    const live = new Map<GPUBuffer, number>();
    const createBuffer = ctx.device.createBuffer.bind(ctx.device);
    ctx.device.createBuffer = (descriptor: GPUBufferDescriptor) => {
      const buffer = createBuffer(descriptor);
      const destroy = buffer.destroy.bind(buffer);
      live.set(buffer, descriptor.size);
      buffer.destroy = () => (live.delete(buffer), destroy());
      return buffer;
    };
    const liveBytes = () => [...live.values()].reduce((a, b) => a + b, 0);

    const engine = await Engine.create(ctx, { config, weights: randomWeights(config, 3) }, { maxBatch: 2 });
    expect(liveBytes()).toBe(engine.gpuBytes);
    const generation = async (i: number) => {
      if (i % 10 === 9) {
        // Now and then a batch, and an abort midway: neither may strand a staging buffer.
        await engine.generateBatch({ sequences: [{ seed: i }, { seed: i + 1, prompt: 'Hi' }], length: 12, steps: 3 });
        const controller = new AbortController();
        const run = engine.generate({ length: 16, steps: 6, seed: i, signal: controller.signal });
        await expect(
          (async () => {
            for await (const _ of run) controller.abort();
          })(),
        ).rejects.toMatchObject({ code: 'aborted' });
      } else {
        const r = await engine.generate({ length: 12, steps: 3, seed: i });
        expect(r.tokens.length).toBe(12);
      }
    };
    for (let i = 0; i < 10; i++) await generation(i); // warm-up: pipelines, tokenizer tables, JIT
    const gpuBefore = engine.gpuBytes;
    const before = settledHeap();
    const samples: number[] = [];
    for (let i = 0; i < 100; i++) {
      await generation(1000 + i);
      expect(engine.gpuBytes).toBe(gpuBefore);
      if (i % 20 === 19) samples.push(settledHeap().heap - before.heap);
    }
    const after = settledHeap();
    console.log(
      `100 generations: GPU ${gpuBefore} -> ${engine.gpuBytes} bytes (live buffers ${liveBytes()}), heap ${before.heap} -> ${after.heap} ` +
        `(${after.heap - before.heap >= 0 ? '+' : ''}${after.heap - before.heap} bytes; every 20: ${samples.join(', ')}), arrayBuffers ${before.arrayBuffers} -> ${after.arrayBuffers}`,
    );
    expect(engine.gpuBytes).toBe(gpuBefore);
    expect(liveBytes()).toBe(gpuBefore);
    expect(after.heap - before.heap).toBeLessThan(HEAP_MARGIN);
    expect(after.arrayBuffers - before.arrayBuffers).toBeLessThan(HEAP_MARGIN);
    // No upward trend either: the last samples are not above the first by more than the margin.
    expect(Math.max(...samples.slice(-2)) - Math.min(...samples.slice(0, 2))).toBeLessThan(HEAP_MARGIN);

    engine.dispose();
    expect(engine.gpuBytes).toBe(0);
    expect(live.size).toBe(0);
    const e = await engine.generate({ steps: 2 }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect([e instanceof PgmError, (e as PgmError).code, (e as PgmError).message]).toEqual([
      true,
      'disposed',
      'this engine was disposed; create a new one',
    ]);
    ctx.device.destroy();
  });
});
