/**
 * Local models without a server (src/convert/import.ts, src/weights/local.ts): a Lightning .ckpt
 * given as a Blob is converted into a model store, read piece by piece and never whole, into the
 * same shards `pgm convert` writes; a model folder given as Files; `local:<name>` ids; and what
 * each of them says when something is wrong.
 */
import { openAsBlob } from 'node:fs';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../../src/convert/checkpoint.js';
import { convertCheckpoint, inspectCheckpoint, readCheckpointWeights } from '../../src/convert/convert.js';
import { importCheckpoint as importInto, loadLocalModel, localIdOf } from '../../src/convert/import.js';
import { dirSink } from '../../src/convert/sink-node.js';
import { fileSource } from '../../src/convert/source-node.js';
import { importCheckpoint } from '../../src/engine.js';
import { configKey, memoryStore, shardKey, type ModelStore } from '../../src/weights/cache.js';
import { floatToHalf, halfToFloat } from '../../src/weights/floats.js';
import { loadModelDir } from '../../src/weights/load-node.js';
import { localModels } from '../../src/weights/local.js';
import type { LoadProgress } from '../../src/weights/load.js';
import { readWeights } from '../../src/weights/host-tensor.js';
import { IMPORT_OPTIONS } from '../../src/options.js';
import { testGpu } from '../helpers/gpu.js';
import { pgmError, readAll } from './helpers.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
/** 2 MB with optimizer states; its EMA backbone is about a tenth of it. */
const CKPT = join(FIXTURES, 'pgm-learn-freqs-linear', 'model.ckpt');
const SHARD = 8 * 1024;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
/** Bytes of live ArrayBuffers, after full collections. */
const liveArrayBuffers = (): number => (gc(), gc(), process.memoryUsage().arrayBuffers);
const PIECE = 256;

let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pgm-import-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** The file as a Blob read from disk (as a browser's File is), that records every slice read from it. */
async function recordedBlob(path: string, name = 'model.ckpt'): Promise<{ blob: Blob; reads: number[] }> {
  const file = await openAsBlob(path);
  const reads: number[] = [];
  const blob = Object.create(Blob.prototype, {
    name: { value: name },
    size: { value: file.size },
    slice: {
      value(start: number, end: number) {
        reads.push(end - start);
        return file.slice(start, end);
      },
    },
  }) as Blob;
  return { blob, reads };
}

/** A store in memory that records every put. */
function recordedStore(): { store: ModelStore; puts: { key: string; bytes: number }[] } {
  const store = memoryStore();
  const puts: { key: string; bytes: number }[] = [];
  return {
    store: { ...store, put: (key, bytes) => (puts.push({ key, bytes: bytes.length }), store.put(key, bytes)) },
    puts,
  };
}

describe('a checkpoint converted into a model store', () => {
  it('writes the shards `pgm convert --dtype f16` writes, reading the EMA tensors piece by piece and holding one shard at a time', async () => {
    const { blob, reads } = await recordedBlob(CKPT);
    const { store, puts } = recordedStore();
    const events: LoadProgress[] = [];
    const imported = await importInto(blob, store, {
      shardSize: SHARD,
      pieceValues: PIECE,
      onProgress: (p) => events.push(p),
    });
    expect(imported.id).toBe('local:model');

    const source = await fileSource(CKPT);
    const dir = join(root, 'cli');
    const cli = await convertCheckpoint(await Checkpoint.open(source), await dirSink(dir), {
      dtype: 'f16',
      shardSize: SHARD,
    });
    await source.close();
    expect(imported.dirConfig).toEqual(cli.dirConfig);
    expect(cli.dirConfig.shards.length).toBeGreaterThanOrEqual(6);
    for (const s of cli.dirConfig.shards)
      expect(await store.get(shardKey(s.sha256))).toEqual(new Uint8Array(await readFile(join(dir, s.file))));
    expect(JSON.parse(new TextDecoder().decode(await store.get(configKey('local:model'))))).toEqual(cli.dirConfig);

    // Memory: every read of the file is a piece of a tensor, or the pickle, or the zip's directory.
    const again = await fileSource(CKPT);
    const ckpt = await Checkpoint.open(again);
    const pickle = ckpt.zip.entries.find((e) => e.name.endsWith('/data.pkl'))!.size;
    const tensors = inspectCheckpoint(ckpt).parameters.map((p) => p.shape.reduce((a, b) => a * b, 1));
    await again.close();
    expect(Math.max(...tensors)).toBeGreaterThan(4 * PIECE); // tensors of several pieces
    const tail = 22 + 0xffff + 20;
    for (const n of reads) expect(n === pickle || n <= Math.max(PIECE * 4, tail, 4096)).toBe(true);
    const emaBytes = tensors.reduce((a, n) => a + 4 * n, 0);
    const read = reads.reduce((a, b) => a + b, 0);
    expect(read).toBeLessThan(emaBytes + pickle + 2 * tail + 64 * 1024); // the optimizer states are never read
    expect(blob.size).toBeGreaterThan(4 * emaBytes);
    // Each put is one shard (of at most a shard's size, or a tensor of its own), config.json last.
    const largest = Math.max(...tensors) * 2;
    for (const p of puts.slice(0, -1))
      expect(p.key.startsWith('sha256:') && p.bytes <= Math.max(SHARD, largest) + 1024).toBe(true);
    expect(puts.at(-1)!.key).toBe(configKey('local:model'));
    expect(puts.length).toBe(cli.dirConfig.shards.length + 1);

    // Progress: convert events up to every byte of the model, the last with its time.
    const total = tensors.reduce((a, n) => a + 2 * n, 0);
    expect(events.every((e) => e.phase === 'convert' && e.file === 'model.ckpt' && e.totalBytes === total)).toBe(true);
    expect(events.map((e) => e.loadedBytes)).toEqual([...events.map((e) => e.loadedBytes)].sort((a, b) => a - b));
    expect(events.at(-1)).toMatchObject({ loadedBytes: total, ms: expect.any(Number) });
  });

  it('holds about one shard at a time: the live memory (after garbage collection) stays under the pickle plus the largest shard, and a store that kept the shards would not', async () => {
    const peakLive = async (retain: boolean): Promise<number> => {
      const { blob } = await recordedBlob(CKPT);
      let peak = 0;
      const base = liveArrayBuffers();
      // Sampled at each shard's put: the shard is complete, the next not begun.
      const sample = () => (peak = Math.max(peak, liveArrayBuffers() - base));
      const kept: Uint8Array[] = [];
      const store: ModelStore = {
        get: async () => undefined,
        put: async (_, bytes) => void (sample(), retain && kept.push(bytes)),
        delete: async () => undefined,
        keys: async () => [],
      };
      await importInto(blob, store, { shardSize: SHARD, pieceValues: 2 * PIECE });
      return peak;
    };
    const source = await fileSource(CKPT);
    const ckpt = await Checkpoint.open(source);
    const pickle = ckpt.zip.entries.find((e) => e.name.endsWith('/data.pkl'))!.size;
    const tensors = inspectCheckpoint(ckpt).parameters.map((p) => 2 * p.shape.reduce((a, b) => a * b, 1));
    await source.close();
    const model = tensors.reduce((a, b) => a + b, 0);
    const bound = pickle + Math.max(SHARD, ...tensors) + 16 * 1024;
    expect(bound).toBeLessThan(model / 2);
    expect(await peakLive(false)).toBeLessThan(bound);
    expect(await peakLive(true)).toBeGreaterThan(bound);
  });

  it('loads from the store by its local id: the EMA weights rounded to f16; the raw weights with ema: false, f32 exact', async () => {
    const store = memoryStore();
    const { blob } = await recordedBlob(CKPT, 'run-7.ckpt');
    const { id } = await importInto(blob, store, { shardSize: SHARD });
    expect([id, localIdOf(blob), localIdOf(id)]).toEqual(['local:run-7', 'local:run-7', 'local:run-7']);
    const opened = await loadLocalModel(id, { store });
    const loaded = await readWeights(opened.weights);
    const source = await fileSource(CKPT);
    const ckpt = await Checkpoint.open(source);
    const ema = await readCheckpointWeights(ckpt);
    expect(opened.config).toEqual(ema.config);
    for (const [name, t] of ema.weights)
      expect(loaded.get(name)!.data, name).toEqual(t.data.map((v) => halfToFloat(floatToHalf(v))));
    const raw = await importInto(blob, store, { name: 'raw', ema: false, dtype: 'f32' });
    const rawWeights = await readCheckpointWeights(ckpt, { ema: false });
    const loadedRaw = await readWeights((await loadLocalModel(raw.id, { store })).weights);
    for (const [name, t] of rawWeights.weights) expect(loadedRaw.get(name)!.data, name).toEqual(t.data);
    await source.close();
    expect((await localModels(store)).map((m) => [m.id, m.dirConfig.dtype])).toEqual([
      ['local:raw', 'f32'],
      ['local:run-7', 'f16'],
    ]);
  });

  it('a checkpoint converted again under the same name replaces the model; its old shards are evicted', async () => {
    const { store, puts } = recordedStore();
    const { blob } = await recordedBlob(CKPT);
    const first = await importInto(blob, store, { shardSize: SHARD });
    await importInto(blob, store, { shardSize: 2 * SHARD });
    const second = JSON.parse(new TextDecoder().decode(await store.get(configKey(first.id)))) as typeof first.dirConfig;
    expect(second.shards.length).toBeLessThan(first.dirConfig.shards.length);
    expect((await store.keys()).sort()).toEqual(
      [configKey(first.id), ...second.shards.map((s) => shardKey(s.sha256))].sort(),
    );
    expect(puts.length).toBe(first.dirConfig.shards.length + second.shards.length + 2);
  });

  it('without a store (Node, cache: false) the checkpoint is converted in memory and loaded', async () => {
    const { blob } = await recordedBlob(CKPT);
    const loaded = await loadLocalModel(blob);
    expect(loaded.id).toBe('local:model');
    expect(loaded.dirConfig.dtype).toBe('f16');
  });
});

describe('a model folder given as files', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(root, 'folder');
    const source = await fileSource(CKPT);
    await convertCheckpoint(await Checkpoint.open(source), await dirSink(dir), { shardSize: SHARD });
    await source.close();
  });
  const filesOf = async (names?: string[]) =>
    Promise.all((names ?? (await readdir(dir))).map(async (f) => new File([await readFile(join(dir, f))], f)));

  it('loads like the folder on disk, and is kept in the store as local:model', async () => {
    const store = memoryStore();
    const events: LoadProgress[] = [];
    const files = await filesOf();
    const loaded = await loadLocalModel(files, { store, onProgress: (p) => events.push(p) });
    const disk = await loadModelDir(dir);
    expect([loaded.id, localIdOf(files)]).toEqual(['local:model', 'local:model']);
    expect(loaded.dirConfig).toEqual(disk.dirConfig);
    const [loadedWeights, diskWeights] = [await readWeights(loaded.weights), await readWeights(disk.weights)];
    for (const [name, t] of diskWeights) expect(loadedWeights.get(name)!.data).toEqual(t.data);
    expect(events.filter((e) => e.phase === 'download' && e.ms !== undefined).map((e) => e.file)).toEqual([
      'config.json',
      ...disk.dirConfig.shards.map((s) => s.file),
    ]);
    expect((await localModels(store)).map((m) => m.id)).toEqual(['local:model']);
    const again = await loadLocalModel('local:model', { store });
    expect(again.dirConfig).toEqual(disk.dirConfig);
  });

  it('says what is wrong with the files picked', async () => {
    const shards = (await readdir(dir)).filter((f) => f.endsWith('.safetensors'));
    const noConfig = await pgmError(async () => loadLocalModel(await filesOf(shards.slice(0, 2))));
    expect(noConfig.message).toBe(
      `no config.json among the 2 file(s) picked (${shards.slice(0, 2).join(', ')}); pick a converted model folder (config.json and its .safetensors shards), or a .ckpt checkpoint`,
    );
    const missing = await pgmError(async () =>
      readAll(loadLocalModel(await filesOf(['config.json', ...shards.slice(1)]))),
    );
    expect(missing).toMatchObject({
      code: 'io',
      message: `model/${shards[0]}: not among the files picked (config.json lists it); pick the whole folder`,
    });
    const config = new File([await readFile(join(dir, 'config.json'))], 'config.json');
    const twice = await pgmError(() => loadLocalModel([config, config]));
    expect(twice.message).toBe(
      'several config.json among the files picked (config.json, config.json): pick one model folder',
    );
  });
});

describe('what a local model says when something is wrong', () => {
  it('an unknown local id names the local models the store has; no store at all is an option error', async () => {
    const store = memoryStore();
    const { blob } = await recordedBlob(CKPT, 'a.ckpt');
    await importInto(blob, store, { shardSize: SHARD });
    const e = await pgmError(() => loadLocalModel('local:b', { store }));
    expect(e).toMatchObject({
      code: 'io',
      message:
        "local:b: the model is not in this browser's model cache (it holds local:a); pick a converted model folder (config.json and its .safetensors shards), or a .ckpt checkpoint again",
    });
    expect((await pgmError(() => loadLocalModel('local:a'))).message).toBe(
      'local:a: local models live in the model cache, and this load has none (cache: false, or no Cache API here)',
    );
  });

  it('a file that is not a checkpoint is a checkpoint error; a store that refuses a shard is an io error naming it, and nothing is left behind', async () => {
    const junk = new File([new Uint8Array(1000).fill(7)], 'notes.ckpt');
    expect(await pgmError(() => importInto(junk, memoryStore()))).toMatchObject({
      code: 'checkpoint',
      message: expect.stringMatching(/^notes\.ckpt: not a zip archive/),
    });
    const store = memoryStore();
    let puts = 0;
    const refusing: ModelStore = {
      ...store,
      put: (key, bytes) =>
        ++puts === 3
          ? Promise.reject(new DOMException('the quota is exceeded', 'QuotaExceededError'))
          : store.put(key, bytes),
    };
    const { blob } = await recordedBlob(CKPT);
    const e = await pgmError(() => importInto(blob, refusing, { shardSize: SHARD }));
    expect(e.code).toBe('io');
    expect(e.message).toMatch(
      /^local:model: the model cache refused model-00003-of-\d{5}\.safetensors \([\d.]+ MiB: QuotaExceededError: the quota is exceeded\); free some of this browser's storage for the site \(clear cached models\) and try again$/,
    );
    expect(await store.keys()).toEqual([]);
  });

  it('an abort stops the conversion between tensors and evicts the shards written', async () => {
    const store = memoryStore();
    const controller = new AbortController();
    const { blob } = await recordedBlob(CKPT);
    const e = await pgmError(() =>
      importInto(blob, store, {
        shardSize: SHARD,
        signal: controller.signal,
        onProgress: (p) => p.loadedBytes > 20_000 && controller.abort(),
      }),
    );
    expect(e).toMatchObject({ code: 'aborted', message: 'the conversion was aborted' });
    expect(await store.keys()).toEqual([]);
  });
});

describe('importCheckpoint (the API)', () => {
  it('checks its options through the table, and wants a store where there is no Cache API', async () => {
    const { blob } = await recordedBlob(CKPT);
    const message = async (options: unknown, what: unknown = blob) =>
      (await pgmError(() => importCheckpoint(what as Blob, options as never))).message;
    expect(await message({ shardsize: 1 })).toBe(
      `importCheckpoint: unknown option "shardsize"; the options are ${IMPORT_OPTIONS.map((o) => o.name).join(', ')}`,
    );
    expect(await message({ dtype: 'bf16' })).toBe('importCheckpoint: unknown dtype "bf16"; use one of f16, f32');
    expect(await message({ shardSize: 0 })).toBe(
      'importCheckpoint: shardSize must be an integer number of bytes >= 1, got 0',
    );
    expect(await message({ cache: false })).toBe(
      'importCheckpoint: cache must be true or a ModelStore { get, put, delete, keys }, got boolean false',
    );
    expect(await message({ name: '' })).toBe(
      'importCheckpoint: name must be a string of 1 to 200 characters, got string ""',
    );
    expect(await message({}, 'model.ckpt')).toBe(
      'importCheckpoint: the checkpoint must be a Blob or a File, got "model.ckpt"',
    );
    expect((await pgmError(() => localIdOf('model.ckpt' as never))).message).toBe(
      'localIdOf: "model.ckpt" is not a local model: give a model folder (File[], FileList, a directory handle), a .ckpt Blob or a local:<name> id',
    );
    expect(await message({})).toBe(
      'importCheckpoint: this environment has no Cache API (Node, or a page served neither over https nor from localhost): pass { cache: store }, a ModelStore',
    );
    const store = memoryStore();
    const imported = await importCheckpoint(blob, { cache: store, name: 'mine', shardSize: SHARD });
    expect((await localModels(store)).map((m) => [m.id, m.bytes, m.params])).toEqual([
      ['local:mine', imported.dirConfig.shards.reduce((a, s) => a + s.size, 0), imported.params],
    ]);
  });
});

describe('createEngine (Node) with local models', () => {
  it('a .ckpt Blob (converted in memory) and a folder given as Files generate the text of the folder on disk', async () => {
    const { createEngine } = await import('../../src/node.js');
    const ckpt = join(FIXTURES, 'pgm-v50258', 'model.ckpt'); // f16 storage, GPT-2 vocabulary
    const dir = join(root, 'owt-tiny');
    const source = await fileSource(ckpt);
    await convertCheckpoint(await Checkpoint.open(source), await dirSink(dir), { dtype: 'f16' });
    await source.close();
    const files = await Promise.all((await readdir(dir)).map(async (f) => new File([await readFile(join(dir, f))], f)));
    const texts: string[] = [];
    const events: string[] = [];
    for (const model of [dir, await openAsBlob(ckpt), files]) {
      const engine = await createEngine({
        model: model as string,
        gpu: await testGpu(),
        maxBatch: 1,
        onProgress: (p) => p.ms !== undefined && events.push(p.phase),
      });
      try {
        texts.push((await engine.generate({ prompt: 'It was', length: 16, steps: 4, seed: 9 })).text);
      } finally {
        engine.dispose();
      }
    }
    expect(texts[1]).toBe(texts[0]);
    expect(texts[2]).toBe(texts[0]);
    expect(events.filter((p) => p === 'convert')).toHaveLength(1);
  });
});
