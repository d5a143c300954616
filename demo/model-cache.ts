/**
 * Model files through the Cache API, so that a reload does not download the weights again.
 * The engine verifies each shard's size and sha256 after reading it; a load that fails
 * evicts every file it touched, so a corrupt or stale cached copy never survives, and an
 * integrity failure of a load that read from the cache is retried once from the network.
 * Shards stream from the network to the engine, which stops reading one past their declared
 * size; only a shard read to its end goes into the cache.
 */
import { PgmError } from '../src/index.js';

export const CACHE_NAME = 'pgm-webgpu-models';
// A model directory's config.json, or the same file emitted by a bundler with a hash (config-1a2B.json).
const CONFIG_FILE = /\/config(-[\w-]+)?\.json$/;
const CACHED_FILE = /(\/config(-[\w-]+)?\.json|\/[^/]+\.safetensors|\/[^/]+\.index\.json)$/;

export interface CachingFetch {
  fetch: typeof fetch;
  /** URLs read from or written to the cache since the last `reset()`. */
  touched: Set<string>;
  /** Files served from the cache since the last `reset()` (shards and configs). */
  hits: number;
  misses: number;
  /** Cache writes of shards that streamed to their end, still under way. */
  writes: Set<Promise<unknown>>;
  reset(): void;
}

export interface CacheHooks {
  /** Bytes of a file arriving from the network. */
  onChunk?(bytes: number): void;
  /** The total shard bytes listed by a `config.json` that was just read. */
  onConfig?(totalBytes: number): void;
}

/** Open the demo's cache; undefined where the Cache API is missing (insecure origin). */
export async function openModelCache(): Promise<Cache | undefined> {
  if (typeof caches === 'undefined') return undefined;
  return caches.open(CACHE_NAME).catch(() => undefined);
}

/**
 * `res` with its body passed through as the reader pulls it (counted by `onChunk`); `whole`
 * gets the body once it has all arrived, never when the reader stops early (the rest is then
 * not downloaded).
 */
function passThrough(res: Response, onChunk: ((n: number) => void) | undefined, whole: (body: Blob) => void): Response {
  if (!res.body) return res;
  const reader = res.body.getReader();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) {
        controller.close();
        whole(new Blob(chunks));
        return;
      }
      chunks.push(value);
      onChunk?.(value.length);
      controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return new Response(body, { headers: { 'content-type': res.headers.get('content-type') ?? '' } });
}

function reportConfig(body: Blob, hooks: CacheHooks): Promise<void> {
  return body
    .text()
    .then((text) => {
      const shards = (JSON.parse(text) as { shards?: { size?: unknown }[] }).shards;
      if (Array.isArray(shards)) hooks.onConfig?.(shards.reduce((a, s) => a + (typeof s.size === 'number' ? s.size : 0), 0));
    })
    .catch(() => undefined); // the engine reports a malformed config.json itself
}

/** A `fetch` for the engine's loaders that serves model files from `cache` first. */
export function cachingFetch(cache: Cache | undefined, hooks: CacheHooks = {}): CachingFetch {
  const state: CachingFetch = {
    touched: new Set(),
    hits: 0,
    misses: 0,
    writes: new Set(),
    reset() {
      state.touched.clear();
      state.hits = state.misses = 0;
    },
    async fetch(input, init) {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (!cache || !CACHED_FILE.test(new URL(url).pathname)) return fetch(input, init);
      state.touched.add(url);
      const config = CONFIG_FILE.test(new URL(url).pathname);
      // A full quota only costs the next reload its speed.
      const keep = (body: Blob) => cache.put(url, new Response(body)).catch(() => undefined);
      let body: Blob;
      const hit = await cache.match(url);
      if (hit) {
        state.hits++;
        body = await hit.blob();
      } else {
        const res = await fetch(url, init);
        if (!res.ok) return res;
        state.misses++;
        if (!config) {
          return passThrough(res, hooks.onChunk, (whole) => {
            const write = keep(whole).finally(() => state.writes.delete(write));
            state.writes.add(write);
          });
        }
        body = await passThrough(res, hooks.onChunk, () => undefined).blob();
        await keep(body);
      }
      if (config) await reportConfig(body, hooks);
      return new Response(body);
    },
  };
  return state;
}

/**
 * Run `load` with `files`; on failure evict what it touched, and retry once when the
 * failure was an integrity error (a corrupt or outdated cached copy).
 */
export async function loadEvictingOnFailure<T>(cache: Cache | undefined, files: CachingFetch, load: () => Promise<T>): Promise<T> {
  const evict = async () => {
    await Promise.all(files.writes); // a shard being written now must not land after its eviction
    if (cache) await Promise.all([...files.touched].map((url) => cache.delete(url)));
  };
  for (let attempt = 0; ; attempt++) {
    files.reset();
    try {
      return await load();
    } catch (e) {
      await evict();
      // All from the network: a second download would fail the same way.
      if (attempt > 0 || files.hits === 0 || !(e instanceof PgmError && e.code === 'integrity')) throw e;
    }
  }
}
