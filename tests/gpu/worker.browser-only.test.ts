/**
 * The engine in a module worker (createWorkerEngine + src/worker.ts) in Chromium: the same step
 * events and results as an Engine on this thread, load progress, AbortSignals for a generation
 * and for a load (downloading and on the GPU), dispose, errors arriving as the PgmError the
 * worker's engine threw, a device lost in the worker, and workers that fail or never answer;
 * local models (a .ckpt File, a folder's Files or directory handle, a local id) crossing to it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { localIdOf } from '../../src/convert/import.js';
import { createEngine, Engine } from '../../src/engine.js';
import { PgmError } from '../../src/errors.js';
import { cacheStore, configKey, pruneStore, shardKey } from '../../src/weights/cache.js';
import type { ModelDirConfig } from '../../src/weights/config.js';
import { loadPackagedModel, type LoadProgress } from '../../src/weights/load.js';
import { localModels } from '../../src/weights/local.js';
import { Vocabulary } from '../../src/text/vocab.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';
import type { StepEvent } from '../../src/types.js';
import { createWorkerEngine, type WorkerEngine } from '../../src/worker-engine.js';
import { testGpu } from '../helpers/gpu.js';

const vocabulary = Vocabulary.fromCounts(new Uint32Array(50257), 300);
const config = tinyConfig('pgm', {
  vocabSize: 300,
  hiddenSize: 16,
  nHeads: 2,
  condDim: 8,
  length: 24,
  vocabMap: [...vocabulary.vocabMap],
});
const model = { config, weights: randomWeights(config, 5) };

const workers: Worker[] = [];
/** The library's engine worker, or the demo's (which can lose its device). */
function startWorker(demo = false): Worker {
  const worker = demo
    ? new Worker(new URL('../../demo/worker.ts', import.meta.url), { type: 'module' })
    : new Worker(new URL('../../src/worker.ts', import.meta.url), { type: 'module' });
  workers.push(worker);
  return worker;
}
afterEach(() => {
  for (const w of workers.splice(0)) w.terminate();
});

let local: Promise<Engine> | undefined;
/** The same model on this thread: the oracle. */
const onThisThread = (): Promise<Engine> =>
  (local ??= testGpu().then((gpu) => Engine.create(gpu, model, { maxBatch: 2 })));

async function rejection(p: PromiseLike<unknown>): Promise<PgmError> {
  try {
    await p;
  } catch (e) {
    return e as PgmError;
  }
  throw new Error('expected a rejection');
}

/** Iterate `run`, calling `interrupt` at its second step event: the steps seen and the iteration's error. */
async function interruptAtStep2(
  run: AsyncIterable<unknown>,
  interrupt: () => void,
): Promise<{ seen: number; error: PgmError }> {
  let seen = 0;
  const error = await rejection(
    (async () => {
      for await (const _ of run) if (++seen === 2) interrupt();
    })(),
  );
  return { seen, error };
}

const plain = (e: StepEvent) => ({ ...e, tokens: [...e.tokens], ms: 0 });

describe('createWorkerEngine (Chromium)', () => {
  it("streams the same step events and results as an Engine on this thread; config, adapter and the load's progress come across", async () => {
    const progress: LoadProgress[] = [];
    const engine = await createWorkerEngine(startWorker(), { model, maxBatch: 2, onProgress: (p) => progress.push(p) });
    const oracle = await onThisThread();
    expect(engine.config).toEqual(config);
    expect(engine.adapter).toEqual(oracle.adapter);
    expect(progress.filter((p) => p.ms !== undefined).map((p) => p.phase)).toEqual(['upload', 'compile']);

    const options = { prompt: 'It was', length: 20, steps: 5, seed: 3 };
    const run = engine.generate(options);
    const events: StepEvent[] = [];
    for await (const e of run) events.push(e);
    const result = await run;
    const expected = oracle.generate(options);
    const expectedEvents: StepEvent[] = [];
    for await (const e of expected) expectedEvents.push(e);
    expect(events.map(plain)).toEqual(expectedEvents.map(plain));
    expect(result.tokens).toBeInstanceOf(Int32Array);
    expect([result.text, [...result.tokens], result.stats.steps]).toEqual([
      (await expected).text,
      [...(await expected).tokens],
      5,
    ]);

    // The KV set's encoders cross like any option: the adaptive one's draws and encoder rows.
    const adaptive = { ...options, encoder: 'adaptive', staleness: 0.2 } as const;
    const adaptiveEvents: StepEvent[] = [];
    for await (const e of engine.generate(adaptive)) adaptiveEvents.push(e);
    const adaptiveExpected: StepEvent[] = [];
    for await (const e of oracle.generate(adaptive)) adaptiveExpected.push(e);
    expect(adaptiveEvents.map(plain)).toEqual(adaptiveExpected.map(plain));

    const batch = {
      sequences: [
        { prompt: 'A', seed: 1 },
        { infill: 'The {{3}} sat', seed: 2 },
      ],
      length: 16,
      steps: 4,
    };
    const batchRun = engine.generateBatch(batch);
    let steps = 0;
    for await (const e of batchRun) (expect(e.sequences).toHaveLength(2), steps++);
    expect(steps).toBe(4);
    expect((await batchRun).sequences.map((s) => s.text)).toEqual(
      (await oracle.generateBatch(batch)).sequences.map((s) => s.text),
    );
    engine.dispose();
  });

  it('an aborted generation rejects with aborted and the engine goes on; the runs queue in call order', async () => {
    const engine = await createWorkerEngine(startWorker(), { model });
    const stop = new AbortController();
    const running = engine.generate({ length: 24, steps: 20, seed: 1, signal: stop.signal });
    const queued = engine.generate({ length: 12, steps: 3, seed: 2 });
    const { seen, error } = await interruptAtStep2(running, () => stop.abort());
    expect(seen).toBeLessThan(20);
    expect([error instanceof PgmError, error.code, error.message]).toEqual([true, 'aborted', 'generation aborted']);
    expect(await rejection(running)).toMatchObject({ code: 'aborted' });
    expect((await queued).stats.steps).toBe(3);
    // Aborted before the call: never runs.
    expect(await rejection(engine.generate({ steps: 2, signal: AbortSignal.abort() }))).toMatchObject({
      code: 'aborted',
    });
    expect((await engine.generate({ length: 12, steps: 2, seed: 4 })).text).toBe(
      (await (await onThisThread()).generate({ length: 12, steps: 2, seed: 4 })).text,
    );
    engine.dispose();
  });

  it('an aborted load rejects with aborted, during the download and during the GPU set-up; the worker serves the next load', async () => {
    const worker = startWorker();
    const downloading = new AbortController();
    const seen: LoadProgress[] = [];
    const onProgress = (p: LoadProgress) => {
      seen.push(p);
      if (p.phase === 'download' && p.file === 'model.safetensors') downloading.abort();
    };
    // The packaged default model, over HTTP from the test server.
    const error = await rejection(createWorkerEngine(worker, { cache: false, signal: downloading.signal, onProgress }));
    expect([error instanceof PgmError, error.code, error.message]).toEqual([true, 'aborted', 'loading was aborted']);
    // The shards are read as they are uploaded: the upload had begun, and never ended.
    expect(seen.filter((p) => p.phase !== 'download').map((p) => [p.phase, p.ms])).toEqual([['upload', undefined]]);

    const uploading = new AbortController();
    const reason = new PgmError('aborted', 'the user left');
    const onGpu = await rejection(
      createWorkerEngine(worker, {
        model,
        signal: uploading.signal,
        onProgress: (p) => p.phase === 'upload' && uploading.abort(reason),
      }),
    );
    expect([onGpu.code, onGpu.message]).toEqual(['aborted', 'the user left']);
    expect(await rejection(createWorkerEngine(worker, { model, signal: AbortSignal.abort() }))).toMatchObject({
      code: 'aborted',
      message: 'loading was aborted',
    });

    const engine = await createWorkerEngine(worker, { model });
    expect((await engine.generate({ length: 8, steps: 2, seed: 1 })).stats.steps).toBe(2);
    engine.dispose();
  });

  it('dispose rejects the running generation with disposed, and every later call; two engines share a worker', async () => {
    const worker = startWorker();
    const [engine, other] = await Promise.all([
      createWorkerEngine(worker, { model }),
      createWorkerEngine(worker, { model }),
    ]);
    const running = engine.generate({ length: 24, steps: 20, seed: 1 });
    const { seen, error } = await interruptAtStep2(running, () => engine.dispose());
    expect(seen).toBeLessThan(20);
    expect([error.code, error.message]).toEqual([
      'disposed',
      'the engine was disposed during generation; create a new engine to generate again',
    ]);
    expect(await rejection(engine.generate({ steps: 2 }))).toMatchObject({
      code: 'disposed',
      message: 'this engine was disposed; create a new one',
    });
    engine.dispose(); // twice: nothing
    expect((await other.generate({ length: 8, steps: 2, seed: 1 })).stats.steps).toBe(2);
    other.dispose();
  });

  it("errors arrive as the PgmError the worker's engine threw; what cannot cross is refused by name", async () => {
    const worker = startWorker();
    // Checked where they are given, with createEngine's messages.
    for (const options of [
      { modle: 'x' },
      { onProgress: 1 },
      { maxBatch: 0 },
      { model: [] },
      { model: [new Blob(['x'])] },
    ]) {
      const here = await rejection(createEngine(options as never));
      expect(await rejection(createWorkerEngine(worker, options as never))).toMatchObject({
        name: 'PgmError',
        code: 'option',
        message: here.message,
      });
    }
    expect(await rejection(createWorkerEngine(worker, { gpu: await testGpu() } as never))).toMatchObject({
      code: 'option',
      message: expect.stringMatching(/^createWorkerEngine: gpu cannot cross to a worker/),
    });
    const store = {
      get: async () => undefined,
      put: async () => undefined,
      delete: async () => undefined,
      keys: async () => [],
    };
    expect(await rejection(createWorkerEngine(worker, { cache: store } as never))).toMatchObject({
      code: 'option',
      message: expect.stringMatching(/^createWorkerEngine: cache takes true or false/),
    });
    expect(await rejection(createWorkerEngine({} as never))).toMatchObject({
      code: 'option',
      message: expect.stringMatching(/^createWorkerEngine: worker must be a Worker/),
    });
    const opened = await loadPackagedModel('pgm-small'); // its shards are read as it loads, here
    expect(await rejection(createWorkerEngine(worker, { model: opened }))).toMatchObject({
      code: 'option',
      message: expect.stringMatching(
        /^createWorkerEngine: a model opened by loadModel \(its shards are read as it loads\) cannot cross to a worker/,
      ),
    });

    // Thrown in the worker: the same code and message as on this thread.
    const unknown = await rejection(createEngine({ model: 'no-such-model' }));
    expect(await rejection(createWorkerEngine(worker, { model: 'no-such-model' }))).toMatchObject({
      name: 'PgmError',
      code: unknown.code,
      message: unknown.message,
    });
    const engine = await createWorkerEngine(worker, { model });
    const oracle = await onThisThread();
    for (const options of [
      { length: 25 },
      { steps: 0 },
      { prompt: 'x', infill: 'y' },
      { seed: -1 },
      { signal: 'stop' },
      { staleness: 0.5 },
      { encoder: 'adaptive', staleness: 2 },
    ]) {
      const here = await rejection(oracle.generate(options as never));
      expect(await rejection(engine.generate(options as never)), JSON.stringify(options)).toMatchObject({
        name: 'PgmError',
        code: here.code,
        message: here.message,
      });
    }
    expect(await rejection(engine.generateBatch({ sequences: [{}, {}, {}, {}, {}] }))).toMatchObject({
      code: 'option',
      message: expect.stringMatching(/exceeds this engine's maxBatch 4/),
    });
    engine.dispose();
  });

  it("local models cross to the worker: a .ckpt File converted there into the cache, then its local id, a folder's Files and its directory handle generate the text of this thread", async () => {
    const worker = startWorker();
    const file = new File(
      [await (await fetch('/tests/fixtures/pgm-v50258/model.ckpt')).arrayBuffer()],
      `worker-${Math.random().toString(36).slice(2)}.ckpt`,
    );
    const id = localIdOf(file);
    const store = cacheStore()!; // the worker's default cache: this origin's
    const options = { prompt: 'It was', length: 12, steps: 3, seed: 7 };
    const texts: string[] = [];
    try {
      const phases: string[] = [];
      const converted = await createWorkerEngine(worker, {
        model: file,
        maxBatch: 1,
        onProgress: (p) => p.ms !== undefined && phases.push(p.phase),
      });
      expect(phases[0]).toBe('convert');
      texts.push((await converted.generate(options)).text);
      converted.dispose();
      const kept = (await localModels()).find((m) => m.id === id)!;
      expect(kept.dirConfig.dtype).toBe('f16');

      const reads: LoadProgress[] = [];
      const fromCache = await createWorkerEngine(worker, {
        model: id,
        maxBatch: 1,
        onProgress: (p) => p.phase === 'download' && p.file !== 'config.json' && p.ms !== undefined && reads.push(p),
      });
      expect(reads.map((p) => p.cached)).toEqual(kept.dirConfig.shards.map(() => true));
      texts.push((await fromCache.generate(options)).text);
      fromCache.dispose();

      // The same model as a folder: its files, and a directory handle (of the origin private file system).
      const dirConfig = JSON.parse(new TextDecoder().decode(await store.get(configKey(id)))) as ModelDirConfig;
      const files = [
        new File([JSON.stringify(dirConfig)], 'config.json'),
        ...(await Promise.all(
          dirConfig.shards.map(
            async (s) => new File([(await store.get(shardKey(s.sha256)))! as Uint8Array<ArrayBuffer>], s.file),
          ),
        )),
      ];
      const root = await navigator.storage.getDirectory();
      const folder = await root.getDirectoryHandle(`worker-folder-${Math.random().toString(36).slice(2)}`, {
        create: true,
      });
      for (const f of files) {
        const writable = await (await folder.getFileHandle(f.name, { create: true })).createWritable();
        await writable.write(f);
        await writable.close();
      }
      try {
        for (const model of [files, folder]) {
          const engine = await createWorkerEngine(worker, { model, cache: false, maxBatch: 1 });
          texts.push((await engine.generate(options)).text);
          engine.dispose();
        }
      } finally {
        await root.removeEntry(folder.name, { recursive: true });
      }
      const oracle = await createEngine({ model: files, cache: false, gpu: await testGpu(), maxBatch: 1 });
      const expected = (await oracle.generate(options)).text;
      oracle.dispose();
      expect(texts).toEqual([expected, expected, expected, expected]);
      // A local id lives in the cache: the worker's engine says so when it has none.
      const none = await rejection(createEngine({ model: id, cache: false }));
      expect(await rejection(createWorkerEngine(worker, { model: id, cache: false }))).toMatchObject({
        code: 'option',
        message: none.message,
      });
    } finally {
      await store.delete(configKey(id));
      await pruneStore(store);
    }
  });

  it('a device lost in the worker resolves lost and rejects generate with device-lost', async () => {
    const worker = startWorker(true);
    const engine: WorkerEngine = await createWorkerEngine(worker, { model });
    worker.postMessage('lose-device');
    const lost = await engine.lost;
    expect([lost instanceof PgmError, lost.code, lost.message]).toEqual([
      true,
      'device-lost',
      expect.stringMatching(/^the GPU device was lost \(.+\); create a new engine$/),
    ]);
    expect(await rejection(engine.generate({ steps: 2 }))).toMatchObject({ code: 'device-lost' });
    engine.dispose();
  });

  it('a worker that cannot load, or that never answers, is PgmError("worker")', async () => {
    const missing = new Worker('/no-such-worker.js', { type: 'module' });
    workers.push(missing);
    expect(await rejection(createWorkerEngine(missing, { model }))).toMatchObject({
      code: 'worker',
      message: expect.stringMatching(/^the engine's worker failed before it answered/),
    });
    const silent = new Worker(URL.createObjectURL(new Blob(['// not the engine'], { type: 'text/javascript' })), {
      type: 'module',
    });
    workers.push(silent);
    expect(await rejection(createWorkerEngine(silent, { model, stallTimeout: 500 }))).toMatchObject({
      code: 'worker',
      message: expect.stringMatching(/^the worker did not answer within 0\.5 s: does it run pgm-webgpu\/worker\?/),
    });
  });
});
