/**
 * Local models in Chromium, no server: the authors' .ckpt layout given as a File is converted in
 * the page into the Cache API (f16 shards), listed by localModels and loaded back by its local id
 * from the cache, with the logits of PyTorch; a converted folder given as a directory handle
 * (the origin private file system stands in for a folder the user picked) loads the same.
 */
import { describe, expect, it } from 'vitest';
import { createEngine, importCheckpoint } from '../../src/engine.js';
import { cacheStore, clearModelCache, shardKey } from '../../src/weights/cache.js';
import type { LoadProgress } from '../../src/weights/load.js';
import { localModels } from '../../src/weights/local.js';
import { compareRows, testGpu } from '../helpers/gpu.js';

const FIXTURE = 'tests/fixtures/pgm-v50258';
const fetchBytes = async (path: string): Promise<Uint8Array<ArrayBuffer>> =>
  new Uint8Array(await (await fetch(`/${path}`)).arrayBuffer());
/** f16 storage: converting it to f16 changes nothing, so the logits are PyTorch's. */
const input = async () =>
  (
    JSON.parse(new TextDecoder().decode(await fetchBytes(`${FIXTURE}/input.json`))) as {
      sequences: { tokens: number[]; positions: number[]; queries: number[] }[];
    }
  ).sequences;
const want = async () => new Float32Array((await fetchBytes(`${FIXTURE}/logits.bin`)).buffer);

describe('local models in the page (Cache API)', () => {
  it('a .ckpt File converted into the cache loads back by its id, offline, with the logits of PyTorch; a directory handle of its files loads the same', async () => {
    const name = `pgm-webgpu-test-${Math.random().toString(36).slice(2)}`;
    const store = cacheStore(name)!;
    const file = new File([await fetchBytes(`${FIXTURE}/model.ckpt`)], 'owt-tiny.ckpt');
    const converting: LoadProgress[] = [];
    const imported = await importCheckpoint(file, {
      cache: store,
      shardSize: 256 * 1024,
      onProgress: (p) => converting.push(p),
    });
    expect(imported.id).toBe('local:owt-tiny');
    expect(imported.dirConfig.dtype).toBe('f16');
    expect(imported.dirConfig.shards.length).toBeGreaterThanOrEqual(3);
    expect(converting.at(-1)).toMatchObject({ phase: 'convert', file: 'owt-tiny.ckpt', ms: expect.any(Number) });
    expect(converting.at(-1)!.loadedBytes).toBe(converting.at(-1)!.totalBytes);
    const listed = await localModels(store);
    expect(listed.map((m) => m.id)).toEqual(['local:owt-tiny']);
    for (const s of imported.dirConfig.shards) expect(await store.get(shardKey(s.sha256))).toBeDefined();

    const loading: LoadProgress[] = [];
    const gpu = await testGpu();
    const engine = await createEngine({ model: imported.id, cache: store, gpu, onProgress: (p) => loading.push(p) });
    const shardReads = loading.filter((p) => p.phase === 'download' && p.file !== 'config.json' && p.ms !== undefined);
    expect(shardReads.map((p) => p.cached)).toEqual(imported.dirConfig.shards.map(() => true));
    const logits = await engine.gpuModel.pgmLogits(await input());
    const { maxAbs, argmaxMismatches } = compareRows(logits, await want(), 50258);
    expect(maxAbs).toBeLessThanOrEqual(1e-4);
    expect(argmaxMismatches).toBe(0);
    engine.dispose();

    // The same model as a folder the user picked: a directory handle (here, of the origin private file system).
    const root = await navigator.storage.getDirectory();
    const folder = await root.getDirectoryHandle(`owt-folder-${Math.random().toString(36).slice(2)}`, { create: true });
    const put = async (file: string, bytes: Uint8Array) => {
      const writable = await (await folder.getFileHandle(file, { create: true })).createWritable();
      await writable.write(bytes as Uint8Array<ArrayBuffer>);
      await writable.close();
    };
    await put('config.json', new TextEncoder().encode(JSON.stringify(imported.dirConfig)));
    for (const s of imported.dirConfig.shards) await put(s.file, (await store.get(shardKey(s.sha256)))!);
    const other = cacheStore(`${name}-folder`)!;
    const fromFolder = await createEngine({ model: folder, cache: other, gpu });
    expect(compareRows(await fromFolder.gpuModel.pgmLogits(await input()), logits, 50258).maxAbs).toBe(0);
    fromFolder.dispose();
    expect((await localModels(other)).map((m) => m.id)).toEqual([`local:${folder.name}`]);
    await root.removeEntry(folder.name, { recursive: true });
    expect(await clearModelCache(name)).toBe(true);
    expect(await clearModelCache(`${name}-folder`)).toBe(true);
  });
});
