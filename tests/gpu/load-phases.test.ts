/**
 * createEngine's load as its progress callback sees it, through the entry of each runtime (Node
 * reads the packaged model from disk, Chromium fetches it): download, verify, upload, compile
 * and warm-up in order, each ending with its time; warmUp builds every forward pass; an abort
 * during the GPU set-up frees every buffer it made.
 */
import { describe, expect, it } from 'vitest';
import type { LoadProgress } from '../../src/model/load.js';
import { runtime, testGpu } from '../helpers/gpu.js';

const entry = () => (runtime === 'node' ? import('../../src/node.js') : import('../../src/index.js'));

describe(`createEngine's load phases (${runtime})`, () => {
  it('download, verify, upload, compile and warm-up, in order, each ending with its time; warmUp builds the incremental pass too', async () => {
    const { createEngine } = await entry();
    const events: LoadProgress[] = [];
    const engine = await createEngine({ model: 'pgm-small', maxBatch: 1, cache: false, warmUp: true, onProgress: (p) => events.push(p) });
    const cold = await createEngine({ model: 'pgm-small', maxBatch: 1, cache: false });
    try {
      const ends = events.filter((p) => p.ms !== undefined);
      expect(ends.map((p) => `${p.phase}${p.file ? ` ${p.file}` : ''}`)).toEqual(['download config.json', 'download model.safetensors', 'verify model.safetensors', 'upload', 'compile', 'warm-up']);
      for (const p of ends) expect(p.ms, p.phase).toBeGreaterThanOrEqual(0);
      // A phase the GPU runs starts with an event of its own (the page can say what runs).
      expect(events.filter((p) => p.ms === undefined && p.phase !== 'download').map((p) => p.phase)).toEqual(['upload', 'warm-up']);
      const total = ends[1].total;
      expect(ends.at(-1)).toMatchObject({ loadedBytes: total, totalBytes: total, loaded: 1, total: 1 });
      // The warm-up allocated the KV set of the incremental pass, which a cold engine does on its first incremental step.
      expect(engine.gpuBytes).toBeGreaterThan(cold.gpuBytes);
      const before = cold.gpuBytes;
      await cold.generate({ length: 2, steps: 1, encoder: 'incremental' });
      expect(cold.gpuBytes).toBe(engine.gpuBytes);
      expect(before).toBeLessThan(cold.gpuBytes);
    } finally {
      engine.dispose();
      cold.dispose();
    }
  });

  it('an abort during the GPU set-up rejects with aborted and frees every buffer it made', async () => {
    const { createEngine } = await entry();
    const gpu = await testGpu();
    let live = 0;
    const createBuffer = gpu.device.createBuffer;
    gpu.device.createBuffer = (descriptor: GPUBufferDescriptor) => {
      const buffer = createBuffer.call(gpu.device, descriptor);
      live += descriptor.size;
      const destroy = buffer.destroy.bind(buffer);
      buffer.destroy = () => ((live -= descriptor.size), destroy());
      return buffer;
    };
    const controller = new AbortController();
    let e: { code: string; message: string } | undefined;
    try {
      e = await createEngine({
        model: 'pgm-small', maxBatch: 1, cache: false, gpu, signal: controller.signal,
        onProgress: (p) => p.phase === 'upload' && p.ms === undefined && controller.abort(),
      }).then(() => undefined, (x: unknown) => x as { code: string; message: string });
    } finally {
      gpu.device.createBuffer = createBuffer;
    }
    expect([e?.code, e?.message]).toEqual(['aborted', 'loading was aborted']);
    expect(live).toBe(0);
  });
});
