import { PgmError, brief, fail } from '../errors.js';
import { parameterMismatches } from './parameters.js';
import { validateModelConfig, type ModelConfig, type ModelDirConfig } from './config.js';
import { findModel, validateManifest, validateShards, type ManifestModel } from './manifest.js';
import { PACKAGED_FILES, PACKAGED_MANIFEST } from './packaged.js';
import { parseSafetensors, sha256Hex } from './safetensors.js';
import type { StoredTensor, Weights } from './tensor.js';

/** Read access to the files of one model directory (disk in Node, HTTP in the browser). */
export interface ModelFiles {
  /** Directory path or base URL, for messages. */
  location: string;
  /**
   * The bytes of `file`. Given `maxBytes`, reading stops after `maxBytes + 1` bytes: a larger
   * file (or an endless answer) comes back longer than `maxBytes`, never whole.
   */
  read(file: string, maxBytes?: number): Promise<Uint8Array>;
}

/** Far above any config.json (a 50257-entry vocabMap is ~0.4 MB); a larger one is not a model config. */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

export interface LoadOptions {
  /** The manifest entry this directory was chosen from: its shard sizes and hashes must agree. */
  manifestEntry?: ManifestModel;
  /** Called after each shard (read, verified and its tensors consumed) with bytes loaded so far and the total. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
}

export interface LoadedModel {
  dirConfig: ModelDirConfig;
  /** = dirConfig.model */
  config: ModelConfig;
  /**
   * The tensors (state_dict names without `backbone.`), as the shards store them. Nothing is
   * read until they are iterated: then each shard in turn is read, its size and sha256 checked
   * and its tensors handed out (views into the shard: a consumer that keeps one keeps the
   * shard), so no more than one shard is held at a time. After the last shard, the
   * tensors' names and shapes are checked against the config. Each iteration reads afresh.
   */
  weights: Weights;
}

const short = (hex: string): string => `${hex.slice(0, 12)}…`;

/** Parse and validate `config.json` of a model directory. */
export function parseModelDirConfig(text: string, where: string): ModelDirConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail('config', `${where}: not valid JSON (${(e as Error).message})`);
  }
  const c = json as Record<string, unknown>;
  if (typeof c !== 'object' || c === null) fail('config', `${where}: not a JSON object`);
  if (c.format !== 'pgm-webgpu' || c.formatVersion !== 1) fail('config', `${where}: not a pgm-webgpu model directory config (format ${brief(c.format)}, formatVersion ${brief(c.formatVersion)}); convert the checkpoint with \`pgm convert\``);
  validateModelConfig(c.model, where);
  if (c.dtype !== 'f32' && c.dtype !== 'f16') fail('config', `${where}: "dtype" must be "f32" or "f16", got ${brief(c.dtype)}`);
  validateShards(c.shards, where);
  return c as unknown as ModelDirConfig;
}

/**
 * Open a model directory: read and validate config.json (and check it against the manifest
 * entry); the shards are read, verified and parsed as `weights` is iterated.
 */
export async function loadModel(files: ModelFiles, opts: LoadOptions = {}): Promise<LoadedModel> {
  const where = `${files.location.replace(/\/$/, '')}/config.json`;
  const configBytes = await files.read('config.json', MAX_CONFIG_BYTES);
  if (configBytes.length > MAX_CONFIG_BYTES) fail('config', `${where}: larger than ${MAX_CONFIG_BYTES} bytes, not a model config; check the model URL or directory`);
  const dirConfig = parseModelDirConfig(new TextDecoder().decode(configBytes), where);
  const entry = opts.manifestEntry;
  if (entry) {
    if (entry.arch !== dirConfig.model.arch) fail('integrity', `${where}: architecture ${dirConfig.model.arch} differs from the manifest entry ${entry.id} (${entry.arch}); delete the cached copy or re-download`);
    const listed = new Map(entry.shards.map((s) => [s.file, s]));
    for (const s of dirConfig.shards) {
      const m = listed.get(s.file);
      if (!m || m.size !== s.size || m.sha256 !== s.sha256) fail('integrity', `shard ${s.file}: config.json and the manifest entry ${entry.id} disagree on it; delete the cached copy or re-download`);
    }
    if (listed.size !== dirConfig.shards.length) fail('integrity', `${where}: lists ${dirConfig.shards.length} shards, the manifest entry ${entry.id} lists ${listed.size}`);
  }
  return { dirConfig, config: dirConfig.model, weights: { [Symbol.asyncIterator]: () => readShards(files, dirConfig, where, opts.onProgress) } };
}

/** The tensors of every shard of a model directory, one shard in memory at a time (see LoadedModel.weights). */
async function* readShards(files: ModelFiles, dirConfig: ModelDirConfig, where: string, onProgress: LoadOptions['onProgress']): AsyncGenerator<[string, StoredTensor]> {
  const total = dirConfig.shards.reduce((a, s) => a + s.size, 0);
  let loaded = 0;
  const shapes = new Map<string, number[]>();
  for (const shard of dirConfig.shards) {
    const bytes = await files.read(shard.file, shard.size);
    if (bytes.length > shard.size) fail('integrity', `shard ${shard.file}: larger than its declared ${shard.size} bytes (reading stopped there); delete the cached copy or re-download`);
    if (bytes.length !== shard.size) fail('integrity', `shard ${shard.file}: size mismatch (expected ${shard.size} bytes, got ${bytes.length}); delete the cached copy or re-download`);
    const sha = await sha256Hex(bytes);
    if (sha !== shard.sha256) fail('integrity', `shard ${shard.file}: sha256 mismatch (expected ${short(shard.sha256)}, got ${short(sha)}); delete the cached copy or re-download`);
    for (const [name, t] of parseSafetensors(bytes, shard.file).tensors) {
      if (shapes.has(name)) fail('safetensors', `${shard.file}: tensor ${name} also appears in an earlier shard`);
      shapes.set(name, t.shape);
      yield [name, t];
    }
    loaded += bytes.length;
    onProgress?.(loaded, total);
  }
  const problems = parameterMismatches(dirConfig.model, shapes);
  if (problems.length) fail('config', `${where}: the shards do not match the model config: ${problems.join('; ')}`);
}

/**
 * Model files fetched over HTTP(S) (browser, or Node with fetch) from `urlOf(file)`; `hint`
 * ends the message of a file that cannot be had.
 */
function fetchedFiles(location: string, urlOf: (file: string) => string, hint: string, fetchFn: typeof fetch): ModelFiles {
  return {
    location,
    async read(file, maxBytes) {
      const url = urlOf(file);
      let res: Response;
      try {
        res = await fetchFn(url);
      } catch (e) {
        throw new PgmError('io', `${url}: fetch failed (${(e as Error).message}); ${hint}`, { cause: e });
      }
      if (!res.ok) fail('io', `${url}: HTTP ${res.status} ${res.statusText}; ${hint}`);
      // A dev server's fallback page for a file it does not have: say so, not "invalid JSON".
      if (res.headers.get('content-type')?.startsWith('text/html')) fail('io', `${url}: the server answered with an HTML page, not the model file; ${hint}`);
      return maxBytes === undefined ? new Uint8Array(await res.arrayBuffer()) : readAtMost(res, maxBytes + 1);
    },
  };
}

/** The first `limit` bytes of a response body (all of it when shorter); the rest is never downloaded. */
async function readAtMost(res: Response, limit: number): Promise<Uint8Array> {
  if (!res.body) return new Uint8Array(await res.arrayBuffer()).subarray(0, limit);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  while (length < limit) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
  }
  if (length >= limit) await reader.cancel().catch(() => undefined);
  const bytes = new Uint8Array(Math.min(length, limit));
  let at = 0;
  for (const chunk of chunks) {
    const part = chunk.subarray(0, bytes.length - at);
    bytes.set(part, at);
    at += part.length;
  }
  return bytes;
}

/** Model files served over HTTP(S) under `baseUrl`. */
export function urlFiles(baseUrl: string | URL, fetchFn: typeof fetch = fetch): ModelFiles {
  const base = new URL(String(baseUrl).endsWith('/') ? String(baseUrl) : `${String(baseUrl)}/`, globalThis.location?.href);
  return fetchedFiles(base.href, (file) => new URL(file, base).href, 'check the model URL (a directory with config.json and its shards)', fetchFn);
}

/** Browser entry: open the model directory at `baseUrl` (see loadModel). */
export function loadModelFromUrl(baseUrl: string | URL, opts: LoadOptions = {}, fetchFn: typeof fetch = fetch): Promise<LoadedModel> {
  return loadModel(urlFiles(baseUrl, fetchFn), opts);
}

/**
 * Browser entry: read `weights-manifest.json` at `manifestUrl`, pick model `id` (or the
 * default) and open it (see loadModel), its shards to be checked against the manifest.
 */
export async function loadModelFromManifest(manifestUrl: string | URL, id?: string, opts: Omit<LoadOptions, 'manifestEntry'> = {}, fetchFn: typeof fetch = fetch): Promise<LoadedModel> {
  const url = new URL(String(manifestUrl), globalThis.location?.href);
  const res = await fetchFn(url.href).catch((e: Error) => fail('io', `${url.href}: fetch failed (${e.message})`));
  if (!res.ok) fail('io', `${url.href}: HTTP ${res.status} ${res.statusText}`);
  let json: unknown;
  try {
    json = await res.json();
  } catch (e) {
    fail('config', `${url.href}: not valid JSON (${(e as Error).message})`);
  }
  const entry = findModel(validateManifest(json, url.href), id);
  return loadModel(urlFiles(new URL(entry.path.endsWith('/') ? entry.path : `${entry.path}/`, url), fetchFn), { ...opts, manifestEntry: entry });
}

/**
 * A model shipped inside the package (the packaged manifest's `id`, or its default), read from
 * where the app's bundler emitted its files. A bundler that copies no assets (esbuild, a page
 * with an import map) leaves them unreachable: then pass the URL of a hosted copy instead.
 */
export async function loadPackagedModel(id?: string, opts: Omit<LoadOptions, 'manifestEntry'> = {}, fetchFn: typeof fetch = fetch): Promise<LoadedModel> {
  const entry = findModel(PACKAGED_MANIFEST, id);
  const urls = PACKAGED_FILES[entry.id];
  if (!urls) return loadModel(urlFiles(entry.path, fetchFn), { ...opts, manifestEntry: entry });
  const urlOf = (file: string): string => urls[file]?.().href ?? fail('integrity', `model ${entry.id}: ${file} is not a file of the packaged model`);
  const hint = `the packaged model ${entry.id} was not emitted with this app (bundlers other than Vite and webpack copy no asset files): host models/${entry.id}/ of the package yourself and pass its URL as \`model\``;
  const files = fetchedFiles(`packaged model ${entry.id}`, urlOf, hint, fetchFn);
  return loadModel(files, { ...opts, manifestEntry: entry });
}
