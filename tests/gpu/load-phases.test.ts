/**
 * createEngine's load as its progress callback sees it, through the entry of each runtime (Node
 * reads the packaged model from disk, Chromium fetches it): download, verify, upload, compile
 * and warm-up in order, each ending with its time; warmUp builds every forward pass; an abort
 * during the GPU set-up frees every buffer it made. A model of several shards is read as it is
 * uploaded: each shard's download and verify inside the upload phase, a damaged cached shard
 * evicted and read again, an abort between two shards.
 */
import { describe, expect, it } from 'vitest';
import type { DirSink } from '../../src/convert/convert.js';
import { reshardModel } from '../../src/convert/reshard.js';
import { memoryStore, shardKey } from '../../src/weights/cache.js';
import { urlFiles, type LoadProgress, type ModelFiles } from '../../src/weights/load.js';
import { memorySink, sha256Hex } from '../../src/weights/safetensors.js';
import { runtime, testGpu } from '../helpers/gpu.js';

const entry = () => (runtime === 'node' ? import('../../src/node.js') : import('../../src/index.js'));

/** The packaged pgm-small (6.4 MB) rewritten into 5 shards of at most 2 MiB, as the files of a picked folder. */
async function shardedFolder(): Promise<File[]> {
  let packaged: ModelFiles;
  if (runtime === 'node') {
    const [{ diskFiles }, { fileURLToPath }] = await Promise.all([
      import('../../src/weights/load-node.js'),
      import('node:url'),
    ]);
    packaged = diskFiles(fileURLToPath(new URL('../../models/pgm-small/', import.meta.url)));
  } else packaged = urlFiles('/models/pgm-small/');
  const files: File[] = [];
  const folder: DirSink = {
    async create(file, size) {
      const sink = memorySink(size);
      return {
        write: sink.write,
        close: () => sink.close().finally(() => files.push(new File([sink.bytes() as Uint8Array<ArrayBuffer>], file))),
      };
    },
    async writeText(file, text) {
      files.push(new File([text], file));
    },
  };
  await reshardModel(packaged, folder, { shardSize: 2 * 2 ** 20 });
  return files;
}

/** Each event that ends something, starts a GPU phase or warns, in words; bytes arriving are left out. */
const steps = (events: LoadProgress[]): string[] =>
  events
    .filter((p) => p.ms !== undefined || p.phase !== 'download' || p.warning)
    .map((p) =>
      p.warning ? `warning ${p.file}` : `${p.phase}${p.file ? ` ${p.file}` : ''}${p.ms === undefined ? ' starts' : ''}`,
    );

/** Buffers made on `gpu` and not destroyed, in bytes, while `f` runs. */
async function liveBytes(gpu: Awaited<ReturnType<typeof testGpu>>, f: () => Promise<void>): Promise<number> {
  let live = 0;
  const createBuffer = gpu.device.createBuffer;
  gpu.device.createBuffer = (descriptor: GPUBufferDescriptor) => {
    const buffer = createBuffer.call(gpu.device, descriptor);
    live += descriptor.size;
    const destroy = buffer.destroy.bind(buffer);
    buffer.destroy = () => ((live -= descriptor.size), destroy());
    return buffer;
  };
  try {
    await f();
  } finally {
    gpu.device.createBuffer = createBuffer;
  }
  return live;
}

describe(`createEngine's load phases (${runtime})`, () => {
  it('download, verify, upload, compile and warm-up, in order, each ending with its time; warmUp builds the incremental and adaptive passes too', async () => {
    const { createEngine } = await entry();
    const events: LoadProgress[] = [];
    const engine = await createEngine({
      model: 'pgm-small',
      maxBatch: 1,
      cache: false,
      warmUp: true,
      onProgress: (p) => events.push(p),
    });
    const cold = await createEngine({ model: 'pgm-small', maxBatch: 1, cache: false });
    try {
      const ends = events.filter((p) => p.ms !== undefined);
      expect(ends.map((p) => `${p.phase}${p.file ? ` ${p.file}` : ''}`)).toEqual([
        'download config.json',
        'download model.safetensors',
        'verify model.safetensors',
        'upload',
        'compile',
        'warm-up',
      ]);
      for (const p of ends) expect(p.ms, p.phase).toBeGreaterThanOrEqual(0);
      // A phase the GPU runs starts with an event of its own (the page can say what runs).
      expect(events.filter((p) => p.ms === undefined && p.phase !== 'download').map((p) => p.phase)).toEqual([
        'upload',
        'warm-up',
      ]);
      const total = ends[1].total;
      expect(ends.at(-1)).toMatchObject({ loadedBytes: total, totalBytes: total, loaded: 1, total: 1 });
      // The warm-up allocated the KV set of the incremental pass and the adaptive pass's state, which a cold engine does on its first such steps.
      expect(engine.gpuBytes).toBeGreaterThan(cold.gpuBytes);
      const before = cold.gpuBytes;
      await cold.generate({ length: 2, steps: 1, encoder: 'incremental' });
      expect(cold.gpuBytes).toBeLessThan(engine.gpuBytes);
      await cold.generate({ length: 2, steps: 1, encoder: 'adaptive' });
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
    const controller = new AbortController();
    let e: { code: string; message: string } | undefined;
    const live = await liveBytes(gpu, async () => {
      e = await createEngine({
        model: 'pgm-small',
        maxBatch: 1,
        cache: false,
        gpu,
        signal: controller.signal,
        onProgress: (p) => p.phase === 'upload' && p.ms === undefined && controller.abort(),
      }).then(
        () => undefined,
        (x: unknown) => x as { code: string; message: string },
      );
    });
    expect([e?.code, e?.message]).toEqual(['aborted', 'loading was aborted']);
    expect(live).toBe(0);
  });

  it('a model of several shards is read as it is uploaded; a damaged cached shard is evicted and read again; an abort between shards frees every buffer', async () => {
    const { createEngine } = await entry();
    const gpu = await testGpu();
    const folder = await shardedFolder();
    const shards = folder
      .map((f) => f.name)
      .filter((f) => f.endsWith('.safetensors'))
      .sort();
    expect(shards.length).toBe(5);
    const store = memoryStore();
    const events: LoadProgress[] = [];
    const engine = await createEngine({
      model: folder,
      maxBatch: 1,
      gpu,
      cache: store,
      onProgress: (p) => events.push(p),
    });
    const whole = await createEngine({ model: 'pgm-small', maxBatch: 1, gpu, cache: false });
    try {
      const perShard = shards.flatMap((f) => [`download ${f}`, `verify ${f}`]);
      expect(steps(events)).toEqual(['download config.json', 'upload starts', ...perShard, 'upload', 'compile']);
      // The upload starts before any shard's bytes; the bar's bytes grow through it.
      const upload = events.findIndex((p) => p.phase === 'upload');
      expect(events[upload]).toMatchObject({ loadedBytes: 0, totalBytes: events.at(-1)!.totalBytes });
      const bytes = events.map((p) => p.loadedBytes);
      expect(bytes.slice(upload)).toEqual([...bytes.slice(upload)].sort((a, b) => a - b));
      // The same tensors as the packaged model's one shard: the same logits.
      const batch = [{ tokens: [300, 5, 17, 42], positions: [0, 1, 2, 3], queries: [4, 7, 30] }];
      expect(await engine.gpuModel.pgmLogits(batch)).toEqual(await whole.gpuModel.pgmLogits(batch));
    } finally {
      engine.dispose();
      whole.dispose();
    }

    // The second shard's cached copy damaged: evicted and read from the files again, with a warning.
    const second = folder.find((f) => f.name === shards[1])!;
    const key = shardKey(await sha256Hex(new Uint8Array(await second.arrayBuffer())));
    (await store.get(key))![100] ^= 1;
    const again: LoadProgress[] = [];
    (await createEngine({ model: folder, maxBatch: 1, gpu, cache: store, onProgress: (p) => again.push(p) })).dispose();
    expect(steps(again)).toEqual([
      'download config.json',
      'upload starts',
      `download ${shards[0]}`,
      `verify ${shards[0]}`,
      `download ${shards[1]}`,
      `verify ${shards[1]}`,
      `warning ${shards[1]}`,
      `download ${shards[1]}`,
      `verify ${shards[1]}`,
      ...shards.slice(2).flatMap((f) => [`download ${f}`, `verify ${f}`]),
      'upload',
      'compile',
    ]);
    expect(again.filter((p) => p.warning).map((p) => p.warning)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^the cached copy of ${shards[1]} is damaged \\(sha256 mismatch .*\\); evicted, downloading it again$`,
        ),
      ),
    ]);
    expect(
      again
        .filter((p) => p.phase === 'download' && p.ms !== undefined && p.file !== 'config.json')
        .map((p) => p.cached),
    ).toEqual([true, true, undefined, true, true, true]);
    expect((await store.get(key))![100]).toBe(new Uint8Array(await second.arrayBuffer())[100]);

    // Aborted once the second shard verified: every buffer of the first two shards freed.
    const controller = new AbortController();
    let e: { code: string; message: string } | undefined;
    const live = await liveBytes(gpu, async () => {
      e = await createEngine({
        model: folder,
        maxBatch: 1,
        gpu,
        cache: false,
        signal: controller.signal,
        onProgress: (p) => p.phase === 'verify' && p.file === shards[1] && controller.abort(),
      }).then(
        () => undefined,
        (x: unknown) => x as { code: string; message: string },
      );
    });
    expect([e?.code, e?.message]).toEqual(['aborted', 'loading was aborted']);
    expect(live).toBe(0);
  });
});
