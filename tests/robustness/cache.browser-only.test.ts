/**
 * The persistent cache in Chromium (the Cache API): a reload with the network cut, a damaged
 * cached shard (evicted and downloaded again), a cache write that fails (a warning event, never
 * silent), eviction of shards no cached config lists, and createEngine's `cache` option.
 */
import { describe, expect, it } from 'vitest';
import { loadOptions } from '../../src/engine.js';
import { cacheStore, clearModelCache, shardKey, type ModelStore } from '../../src/weights/cache.js';
import { loadPackagedModel, type LoadOptions, type LoadProgress } from '../../src/weights/load.js';
import { PACKAGED_MANIFEST } from '../../src/weights/packaged.js';
import { readWeights } from '../../src/weights/host-tensor.js';

const MODEL = PACKAGED_MANIFEST.default!;
const SHARD = PACKAGED_MANIFEST.models.find((m) => m.id === MODEL)!.shards[0];

/** fetch that counts requests and can be cut off, as a network that went away. */
function network() {
  const state = { requests: 0, cut: false };
  const fetchFn = ((input: RequestInfo | URL, init?: RequestInit) => {
    state.requests++;
    return state.cut ? Promise.reject(new TypeError('Failed to fetch')) : fetch(input, init);
  }) as typeof fetch;
  return { state, fetchFn };
}

/** The packaged model opened and its weights read (which reads, verifies and stores its shard). */
async function loadAll(opts: Omit<LoadOptions, 'manifestEntry'>, fetchFn: typeof fetch) {
  const opened = await loadPackagedModel(MODEL, opts, fetchFn);
  return { ...opened, weights: await readWeights(opened.weights) };
}

/** A fresh cache of its own for each test. */
const freshStore = (): { store: ModelStore; name: string } => {
  const name = `pgm-webgpu-test-${Math.random().toString(36).slice(2)}`;
  return { store: cacheStore(name)!, name };
};

describe('the model cache (Cache API)', () => {
  it('a reload with the network cut loads from the cache: config.json from the cache (with a warning), the shard by its sha256', async () => {
    const { store, name } = freshStore();
    const { state, fetchFn } = network();
    const first: LoadProgress[] = [];
    const online = await loadAll({ store, onProgress: (p) => first.push(p) }, fetchFn);
    expect(first.filter((p) => p.cached)).toEqual([]);
    expect((await store.keys()).sort()).toEqual([`config:packaged model ${MODEL}`, shardKey(SHARD.sha256)].sort());
    state.cut = true;
    state.requests = 0;
    const events: LoadProgress[] = [];
    const offline = await loadAll({ store, onProgress: (p) => events.push(p) }, fetchFn);
    expect(state.requests).toBe(1); // config.json was tried, the shard was not
    expect(events[0]).toMatchObject({
      phase: 'download',
      file: 'config.json',
      cached: true,
      warning: expect.stringMatching(
        /config\.json: fetch failed \(Failed to fetch: .*\); .*; using the config\.json cached by an earlier load$/,
      ),
    });
    expect(events.find((p) => p.file === SHARD.file && p.phase === 'download')).toMatchObject({
      cached: true,
      loaded: SHARD.size,
      total: SHARD.size,
    });
    for (const [k, t] of online.weights) expect(offline.weights.get(k)!.data).toEqual(t.data);
    expect(await clearModelCache(name)).toBe(true);
  });

  it('a damaged cached shard is evicted and downloaded again, with a warning; a stray shard no config lists is evicted', async () => {
    const { store, name } = freshStore();
    const { fetchFn } = network();
    await loadAll({ store }, fetchFn);
    const bytes = (await store.get(shardKey(SHARD.sha256)))!;
    bytes[bytes.length - 1] ^= 0xff;
    await store.put(shardKey(SHARD.sha256), bytes);
    await store.put(shardKey('0'.repeat(64)), new Uint8Array(10));
    const warnings: string[] = [];
    await loadAll({ store, onProgress: (p) => p.warning && warnings.push(p.warning) }, fetchFn);
    expect(warnings).toEqual([
      expect.stringMatching(
        new RegExp(
          `^the cached copy of ${SHARD.file} is damaged \\(sha256 mismatch .*\\); evicted, downloading it again$`,
        ),
      ),
    ]);
    expect((await store.get(shardKey(SHARD.sha256)))![bytes.length - 1]).toBe(bytes[bytes.length - 1] ^ 0xff);
    expect(await store.keys()).not.toContain(shardKey('0'.repeat(64)));
    await clearModelCache(name);
  });

  it('a cache write that fails is a warning event naming the file and the cause; the load goes on', async () => {
    const { store, name } = freshStore();
    const refusing: ModelStore = {
      ...store,
      put: () => Promise.reject(new DOMException('the quota is exceeded', 'QuotaExceededError')),
    };
    const warnings: LoadProgress[] = [];
    const model = await loadAll(
      { store: refusing, onProgress: (p) => p.warning && warnings.push(p) },
      network().fetchFn,
    );
    expect(model.config.arch).toBe('pgm');
    expect(warnings.map((p) => p.warning)).toEqual([
      'config.json could not be stored in the cache (QuotaExceededError: the quota is exceeded)',
      expect.stringMatching(
        new RegExp(
          `^${SHARD.file} \\([\\d.]+ MiB\\) could not be stored in the cache \\(QuotaExceededError: the quota is exceeded\\); it will be downloaded again next time$`,
        ),
      ),
    ]);
    await clearModelCache(name);
  });

  it("createEngine's cache option: the Cache API by default in a browser, none with false, a store of your own as given", () => {
    expect(loadOptions({}).store).toBeDefined();
    expect(loadOptions({ cache: true }).store).toBeDefined();
    expect(loadOptions({ cache: false }).store).toBeUndefined();
    const own = freshStore().store;
    expect(loadOptions({ cache: own }).store).toBe(own);
  });
});
