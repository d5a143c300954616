/**
 * Model files through the Cache API, so that a reload does not download the weights again.
 * The engine verifies each shard's size and sha256 after reading it; a load that fails
 * evicts every file it touched, so a corrupt or stale cached copy never survives, and an
 * integrity failure is retried once from the network.
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

async function readCounting(res: Response, onChunk?: (n: number) => void): Promise<Blob> {
  if (!res.body) return res.blob();
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    onChunk?.(value.length);
  }
  return new Blob(chunks);
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
    reset() {
      state.touched.clear();
      state.hits = state.misses = 0;
    },
    async fetch(input, init) {
      const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
      if (!cache || !CACHED_FILE.test(new URL(url).pathname)) return fetch(input, init);
      state.touched.add(url);
      let body: Blob;
      const hit = await cache.match(url);
      if (hit) {
        state.hits++;
        body = await hit.blob();
      } else {
        const res = await fetch(url, init);
        if (!res.ok) return res;
        state.misses++;
        body = await readCounting(res, hooks.onChunk);
        // A full quota only costs the next reload its speed.
        await cache.put(url, new Response(body)).catch(() => undefined);
      }
      if (CONFIG_FILE.test(new URL(url).pathname)) await reportConfig(body, hooks);
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
    if (cache) await Promise.all([...files.touched].map((url) => cache.delete(url)));
  };
  for (let attempt = 0; ; attempt++) {
    files.reset();
    try {
      return await load();
    } catch (e) {
      await evict();
      if (attempt > 0 || !(e instanceof PgmError && e.code === 'integrity')) throw e;
    }
  }
}
