/**
 * A persistent store for model files, so that a reload does not download the weights again: the
 * browser's Cache API by default (`cacheStore`), or any `ModelStore`. loadModel keeps shards by
 * their sha256 (a cached shard is what config.json asks for, or it is evicted and downloaded
 * again) and config.json and manifests by their location, read from the network first and from
 * the store only when the network fails (offline). Nothing goes in before it verified.
 */

/** Bytes by key; every method may reject (quota, blocked storage): loadModel reports it and goes on without. */
export interface ModelStore {
  get(key: string): Promise<Uint8Array | undefined>;
  put(key: string, bytes: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  keys(): Promise<string[]>;
}

/** The Cache API cache the library keeps model files in. */
export const MODEL_CACHE = 'pgm-webgpu-models';

/** Cache API keys must be http(s) URLs: each key is one under this unreachable origin. */
const KEY_ORIGIN = 'https://pgm-webgpu.invalid/';

/** The store key of a shard, a config.json (by its model's location) and a manifest (by its URL). */
export const shardKey = (sha256: string): string => `sha256:${sha256}`;
export const configKey = (location: string): string => `config:${location}`;
export const manifestKey = (url: string): string => `manifest:${url}`;

/** Model files in the Cache API (`name`); undefined where there is none (Node, an insecure page). */
export function cacheStore(name = MODEL_CACHE): ModelStore | undefined {
  if (typeof caches === 'undefined') return undefined;
  let opened: Promise<Cache> | undefined;
  const cache = (): Promise<Cache> => (opened ??= caches.open(name));
  const url = (key: string): string => KEY_ORIGIN + encodeURIComponent(key);
  return {
    async get(key) {
      const hit = await (await cache()).match(url(key));
      return hit ? new Uint8Array(await hit.arrayBuffer()) : undefined;
    },
    async put(key, bytes) {
      await (await cache()).put(url(key), new Response(bytes as Uint8Array<ArrayBuffer>));
    },
    async delete(key) {
      await (await cache()).delete(url(key));
    },
    async keys() {
      const urls = (await (await cache()).keys()).map((r) => r.url).filter((u) => u.startsWith(KEY_ORIGIN));
      return urls.map((u) => decodeURIComponent(u.slice(KEY_ORIGIN.length)));
    },
  };
}

/** A store in memory, for the life of the object (a checkpoint converted where there is no cache: Node, `cache: false`); it keeps the arrays it is given and gives them out, no copies. */
export function memoryStore(): ModelStore {
  const entries = new Map<string, Uint8Array>();
  return {
    get: async (key) => entries.get(key),
    put: async (key, bytes) => void entries.set(key, bytes),
    delete: async (key) => void entries.delete(key),
    keys: async () => [...entries.keys()],
  };
}

/** Delete every model file the library cached in this browser; false where there was nothing (or no Cache API). */
export async function clearModelCache(name = MODEL_CACHE): Promise<boolean> {
  return typeof caches !== 'undefined' && caches.delete(name);
}

/**
 * Evict the shards no stored config.json lists any more (those of an older version of a model):
 * called after a load stored its config.
 */
export async function pruneStore(store: ModelStore): Promise<void> {
  const keys = await store.keys();
  const listed = new Set<string>();
  for (const key of keys.filter((k) => k.startsWith('config:'))) {
    try {
      const { shards } = JSON.parse(new TextDecoder().decode(await store.get(key))) as { shards: { sha256: string }[] };
      for (const s of shards) listed.add(shardKey(s.sha256));
    } catch {
      await store.delete(key); // unreadable: it cannot serve a load either
    }
  }
  await Promise.all(keys.filter((k) => k.startsWith('sha256:') && !listed.has(k)).map((k) => store.delete(k)));
}
