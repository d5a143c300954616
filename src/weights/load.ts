import { brief, fail, PgmError, printable } from '../errors.js';
import { configKey, manifestKey, pruneStore, shardKey, type ModelStore } from './cache.js';
import { validateModelConfig, type ModelConfig, type ModelDirConfig, type ShardInfo } from './config.js';
import { checkAborted, fetchBody, type BodyOptions } from './fetch.js';
import { findModel, validateManifest, validateShards, type ManifestModel, type WeightsManifest } from './manifest.js';
import { notEmittedHint } from './bundlers.js';
import { PACKAGED_FILES, PACKAGED_MANIFEST } from './packaged.js';
import { parameterMismatches, parameterTotals } from './parameters.js';
import { parseSafetensors, sha256Hex } from './safetensors.js';
import type { StoredTensor, Weights } from './host-tensor.js';

/** Read access to the files of one model directory (disk in Node, HTTP in the browser). */
export interface ModelFiles {
  /** Directory path or base URL, for messages (and the key of its config.json in a store). */
  location: string;
  /**
   * The bytes of `file`. Given `maxBytes`, reading stops after `maxBytes + 1` bytes: a larger
   * file (or an endless answer) comes back longer than `maxBytes`, never whole. `options` also
   * carries the load's progress callback, signal and stall timeout (see BodyOptions).
   */
  read(file: string, options?: BodyOptions): Promise<Uint8Array>;
  /** What to do about a file that does not match its config.json (messages); default: re-download. */
  remedy?: string;
}

/** Far above any config.json (a 50257-entry vocabMap is ~0.4 MB) or manifest; a larger one is not one. */
export const MAX_CONFIG_BYTES = 16 * 2 ** 20;
/** The largest shard a model may have: larger ArrayBuffers are not portable (and caches refuse far less). */
export const MAX_SHARD_BYTES = 2 ** 31;
/** The most bytes the shards of one model may add up to, whatever its config claims. */
export const MAX_MODEL_BYTES = 2 ** 34;

/**
 * The phases of a load, in order: `convert` (a checkpoint converted in the page into the store,
 * src/convert/import.ts: the model's bytes as they are written), `download` (each file's bytes
 * as they arrive, from the network, local files or the store), `verify` (each shard's size and
 * sha256), `upload` (weights to the GPU), `compile` (pipelines, and the kernel variants measured
 * once per adapter), `warm-up` (a first generation of each forward pass, with `warmUp`).
 */
export const LOAD_PHASES = ['convert', 'download', 'verify', 'upload', 'compile', 'warm-up'] as const;
export type LoadPhase = (typeof LOAD_PHASES)[number];

/** One progress event of a load (`onProgress`). */
export interface LoadProgress {
  phase: LoadPhase;
  /** download, verify: the file this event is about (config.json or a shard); convert: the checkpoint. */
  file?: string;
  /** download, verify: bytes of `file` done so far, and its size (0 while unknown); convert: as loadedBytes and totalBytes; other phases: 0 of 1, then 1 of 1. */
  loaded: number;
  total: number;
  /** Bytes of every shard of the model downloaded (or read from the store; convert: written) so far, and in all (0 until config.json is read). */
  loadedBytes: number;
  totalBytes: number;
  /** On the event that ends a phase (download, verify: for this file): how long it took, in milliseconds. */
  ms?: number;
  /** download: `file` came from the persistent store, not the network. */
  cached?: boolean;
  /** Something went wrong that the load survives (a cache write refused, a damaged cached copy): say so. */
  warning?: string;
}

export interface LoadOptions {
  /** The manifest entry this directory was chosen from: its shard sizes and hashes must agree. */
  manifestEntry?: ManifestModel;
  /** Called as bytes arrive and as each phase ends (see LoadProgress). */
  onProgress?: (p: LoadProgress) => void;
  /** Stops the load: it rejects with PgmError('aborted'). */
  signal?: AbortSignal;
  /** HTTP: fail a file that delivers less than 16 KiB in this many milliseconds (default 30,000; Infinity: never). */
  stallTimeout?: number;
  /** Where verified files are kept across loads (browsers: the Cache API by default, see createEngine's `cache`). */
  store?: ModelStore;
}

export interface LoadedModel {
  dirConfig: ModelDirConfig;
  /** = dirConfig.model */
  config: ModelConfig;
  /**
   * The tensors (state_dict names without `backbone.`), as the shards store them. Nothing is
   * read until they are iterated: then each shard in turn is read (from the store or the
   * files), its size and sha256 checked and its tensors handed out (views into the shard: a
   * consumer that keeps one keeps the shard), so that about one shard is held at a time; the
   * download and verify events of each shard come out as it is reached. After the last shard,
   * the tensors' names and shapes are checked against the config. Each iteration reads afresh.
   */
  weights: Weights;
}

const short = (hex: string): string => `${hex.slice(0, 12)}…`;

/** What to do about a file that does not match its config.json, by where the files are (ModelFiles.remedy). */
export const REMEDY = {
  http: "the server's copy is damaged or belongs to another version of the model; try again, or fix the files on the server",
  disk: 'the directory holds a damaged or partly written model; convert it again',
  other: 'delete the cached copy or re-download',
};

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());
const reason = (e: unknown): string => printable(e instanceof Error ? `${e.name}: ${e.message}` : String(e));

/** A load's progress events, with the running byte totals of its shards. */
class Progress {
  loadedBytes = 0;
  totalBytes = 0;
  constructor(private readonly listener: ((p: LoadProgress) => void) | undefined) {}

  emit(e: Omit<LoadProgress, 'loadedBytes' | 'totalBytes'>): void {
    this.listener?.({ ...e, loadedBytes: this.loadedBytes, totalBytes: this.totalBytes });
  }

  warn(file: string, warning: string): void {
    this.emit({ phase: 'download', file, loaded: 0, total: 0, warning });
  }
}

/** Parse JSON from an untrusted file; `where` names it. */
function parseJson(bytes: Uint8Array, where: string): unknown {
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    return fail('config', `${where}: not valid JSON (${printable((e as Error).message)})`);
  }
}

/** Parse and validate `config.json` of a model directory. */
export function parseModelDirConfig(text: string, where: string): ModelDirConfig {
  const c = parseJson(new TextEncoder().encode(text), where) as Record<string, unknown>;
  if (typeof c !== 'object' || c === null) fail('config', `${where}: not a JSON object`);
  if (c.format !== 'pgm-webgpu' || c.formatVersion !== 1)
    fail(
      'config',
      `${where}: not a pgm-webgpu model directory config (format ${brief(c.format)}, formatVersion ${brief(c.formatVersion)}); convert the checkpoint with \`pgm convert\``,
    );
  validateModelConfig(c.model, where);
  if (c.dtype !== 'f32' && c.dtype !== 'f16')
    fail('config', `${where}: "dtype" must be "f32" or "f16", got ${brief(c.dtype)}`);
  validateShards(c.shards, where);
  return c as unknown as ModelDirConfig;
}

/**
 * The shard sizes config.json declares, checked before anything is downloaded: each under
 * MAX_SHARD_BYTES, together under MAX_MODEL_BYTES, and within what the model's own parameters
 * take (2 to 4 bytes a value, plus the safetensors headers).
 */
function checkShardSizes(dirConfig: ModelDirConfig, where: string): number {
  const { values, tensors } = parameterTotals(dirConfig.model);
  const total = dirConfig.shards.reduce((a, s) => a + s.size, 0);
  const big = dirConfig.shards.find((s) => s.size > MAX_SHARD_BYTES);
  if (big)
    fail(
      'config',
      `${where}: shard ${big.file} declares ${big.size} bytes, over the ${MAX_SHARD_BYTES} a shard may have; re-shard the model (pgm reshard <dir> --shard-size 64M)`,
    );
  if (total > MAX_MODEL_BYTES)
    fail('config', `${where}: the shards declare ${total} bytes, over the ${MAX_MODEL_BYTES} a model may have`);
  const headers = dirConfig.shards.length * (8 + 2 ** 20) + 1024 * tensors;
  if (total < 2 * values || total > 4 * values + headers) {
    const model = Number.isSafeInteger(4 * values)
      ? `${values} parameters (${2 * values} to ${4 * values} bytes, plus headers)`
      : 'more parameters than any shards can hold';
    fail(
      'config',
      `${where}: the shards declare ${total} bytes, but the model it describes has ${model}; config.json does not describe these shards`,
    );
  }
  return total;
}

/**
 * Open a model directory: read and validate config.json (and check it against the manifest
 * entry and its shard sizes against the model); the shards are read, verified (a damaged cached
 * copy evicted and downloaded again) and parsed as `weights` is iterated (see LoadedModel).
 */
export async function loadModel(files: ModelFiles, opts: LoadOptions = {}): Promise<LoadedModel> {
  const where = `${files.location.replace(/\/$/, '')}/config.json`;
  const remedy = files.remedy ?? REMEDY.other;
  const { store } = opts;
  const progress = new Progress(opts.onProgress);
  checkAborted(opts.signal);
  const config = await readConfig(files, where, opts, progress);
  const dirConfig = parseModelDirConfig(new TextDecoder().decode(config.bytes), where);
  const entry = opts.manifestEntry;
  if (entry) {
    if (entry.arch !== dirConfig.model.arch)
      fail(
        'integrity',
        `${where}: architecture ${dirConfig.model.arch} differs from the manifest entry ${entry.id} (${entry.arch}); ${remedy}`,
      );
    const listed = new Map(entry.shards.map((s) => [s.file, s]));
    for (const s of dirConfig.shards) {
      const m = listed.get(s.file);
      if (!m || m.size !== s.size || m.sha256 !== s.sha256)
        fail('integrity', `shard ${s.file}: config.json and the manifest entry ${entry.id} disagree on it; ${remedy}`);
    }
    if (listed.size !== dirConfig.shards.length)
      fail(
        'integrity',
        `${where}: lists ${dirConfig.shards.length} shards, the manifest entry ${entry.id} lists ${listed.size}`,
      );
  }
  progress.totalBytes = checkShardSizes(dirConfig, where);
  // Stored first, so that pruning by another load (another tab) keeps this model's shards.
  if (store && !config.cached)
    await store
      .put(configKey(files.location), config.bytes)
      .catch((e) => progress.warn('config.json', `config.json could not be stored in the cache (${reason(e)})`));
  return {
    dirConfig,
    config: dirConfig.model,
    weights: { [Symbol.asyncIterator]: () => readShards(files, dirConfig, where, opts, progress, remedy) },
  };
}

/**
 * The tensors of every shard of a model directory, one shard at a time (see LoadedModel.weights).
 * A shard's store write runs while its tensors are consumed, and ends before the next shard is
 * read: at most that shard and the next are held.
 */
async function* readShards(
  files: ModelFiles,
  dirConfig: ModelDirConfig,
  where: string,
  opts: LoadOptions,
  progress: Progress,
  remedy: string,
): AsyncGenerator<[string, StoredTensor]> {
  progress.loadedBytes = 0;
  const shapes = new Map<string, number[]>();
  for (const shard of dirConfig.shards) {
    checkAborted(opts.signal);
    const { bytes, write } = await readShard(files, shard, opts, progress, remedy);
    for (const [name, t] of parseSafetensors(bytes, shard.file).tensors) {
      if (shapes.has(name)) fail('safetensors', `${shard.file}: tensor ${name} also appears in an earlier shard`);
      shapes.set(name, t.shape);
      checkAborted(opts.signal);
      yield [name, t];
    }
    await write;
  }
  const problems = parameterMismatches(dirConfig.model, shapes);
  if (problems.length) fail('config', `${where}: the shards do not match the model config: ${problems.join('; ')}`);
  if (opts.store) await pruneStore(opts.store).catch(() => undefined); // housekeeping: a failure costs only space
}

/** config.json: from the files (the network) first; where that fails, the store's copy, with a warning. */
async function readConfig(
  files: ModelFiles,
  where: string,
  opts: LoadOptions,
  progress: Progress,
): Promise<{ bytes: Uint8Array; cached: boolean }> {
  const tooLarge = (): never =>
    fail(
      'config',
      `${where}: larger than ${MAX_CONFIG_BYTES} bytes, not a model config; check the model URL or directory`,
    );
  const file = 'config.json';
  const start = now();
  let bytes: Uint8Array;
  try {
    const onBytes = (n: number) => progress.emit({ phase: 'download', file, loaded: n, total: 0 });
    bytes = await files.read(file, {
      maxBytes: MAX_CONFIG_BYTES,
      tooLarge,
      onBytes,
      signal: opts.signal,
      stallTimeout: opts.stallTimeout,
    });
  } catch (e) {
    const copy =
      opts.store && e instanceof PgmError && e.code === 'io'
        ? await opts.store.get(configKey(files.location)).catch(() => undefined)
        : undefined;
    if (!copy) throw e;
    progress.emit({
      phase: 'download',
      file,
      loaded: copy.length,
      total: copy.length,
      ms: now() - start,
      cached: true,
      warning: `${(e as Error).message}; using the config.json cached by an earlier load`,
    });
    return { bytes: copy, cached: true };
  }
  if (bytes.length > MAX_CONFIG_BYTES) tooLarge();
  progress.emit({ phase: 'download', file, loaded: bytes.length, total: bytes.length, ms: now() - start });
  return { bytes, cached: false };
}

/** What is wrong with a shard's bytes against its config.json entry (size, then sha256); undefined when nothing. */
export async function shardProblem(bytes: Uint8Array, shard: ShardInfo): Promise<string | undefined> {
  if (bytes.length !== shard.size) return `size mismatch (expected ${shard.size} bytes, got ${bytes.length})`;
  const sha = await sha256Hex(bytes);
  return sha === shard.sha256 ? undefined : `sha256 mismatch (expected ${short(shard.sha256)}, got ${short(sha)})`;
}

/**
 * One shard, verified (size, sha256): the store's copy when it has one that verifies (a damaged
 * one is evicted), else downloaded, verified and then put in the store (`write`: it never
 * rejects, a refused write is a warning event).
 */
async function readShard(
  files: ModelFiles,
  shard: ShardInfo,
  opts: LoadOptions,
  progress: Progress,
  remedy: string,
): Promise<{ bytes: Uint8Array; write: Promise<void> }> {
  const { file, size } = shard;
  const key = shardKey(shard.sha256);
  const verify = async (bytes: Uint8Array): Promise<string | undefined> => {
    const start = now();
    const problem = await shardProblem(bytes, shard);
    progress.emit({ phase: 'verify', file, loaded: size, total: size, ms: now() - start });
    return problem;
  };
  const start = now();
  const before = progress.loadedBytes;
  if (opts.store) {
    const copy = await opts.store
      .get(key)
      .catch((e) => progress.warn(file, `the cached copy of ${file} could not be read (${reason(e)}); downloading it`));
    if (copy) {
      checkAborted(opts.signal);
      progress.loadedBytes = before + copy.length;
      progress.emit({ phase: 'download', file, loaded: copy.length, total: size, ms: now() - start, cached: true });
      const problem = await verify(copy);
      if (problem === undefined) return { bytes: copy, write: Promise.resolve() };
      progress.loadedBytes = before;
      progress.warn(file, `the cached copy of ${file} is damaged (${problem}); evicted, downloading it again`);
      await opts.store.delete(key).catch(() => undefined);
    }
  }
  const larger = (announced?: number): never =>
    fail(
      'integrity',
      `shard ${file}: larger than its declared ${size} bytes (${announced === undefined ? 'reading stopped there' : `the server announces ${announced}`}); ${remedy}`,
    );
  const onBytes = (n: number) => {
    progress.loadedBytes = before + Math.min(n, size);
    progress.emit({ phase: 'download', file, loaded: n, total: size });
  };
  const bytes = await files.read(file, {
    maxBytes: size,
    tooLarge: larger,
    onBytes,
    signal: opts.signal,
    stallTimeout: opts.stallTimeout,
  });
  progress.loadedBytes = before + Math.min(bytes.length, size);
  progress.emit({ phase: 'download', file, loaded: bytes.length, total: size, ms: now() - start });
  if (bytes.length > size) larger();
  const problem = await verify(bytes);
  if (problem !== undefined) fail('integrity', `shard ${file}: ${problem}; ${remedy}`);
  const write = opts.store
    ?.put(key, bytes)
    .catch((e) =>
      progress.warn(
        file,
        `${file} (${(size / 2 ** 20).toFixed(1)} MiB) could not be stored in the cache (${reason(e)}); it will be downloaded again next time`,
      ),
    );
  return { bytes, write: write ?? Promise.resolve() };
}

/**
 * Model files fetched over HTTP(S) (browser, or Node with fetch) from `urlOf(file)`; `hint`
 * ends the message of a file that cannot be had.
 */
function fetchedFiles(
  location: string,
  urlOf: (file: string) => string,
  hint: string,
  fetchFn: typeof fetch,
): ModelFiles {
  return { location, remedy: REMEDY.http, read: (file, options) => fetchBody(urlOf(file), fetchFn, hint, options) };
}

/** `url` resolved against the page (absolute URLs need none); a relative one without a page is an option error. */
function absoluteUrl(url: string | URL, what: string): URL {
  try {
    return new URL(String(url), globalThis.location?.href);
  } catch {
    return fail(
      'option',
      `${what} ${brief(String(url))} is not a URL${globalThis.location ? '' : ', and there is no page to resolve it against: give an absolute http(s) URL'}`,
    );
  }
}

/** Model files served over HTTP(S) under `baseUrl`. */
export function urlFiles(baseUrl: string | URL, fetchFn: typeof fetch = fetch): ModelFiles {
  const base = absoluteUrl(
    String(baseUrl).endsWith('/') ? String(baseUrl) : `${String(baseUrl)}/`,
    'the model directory',
  );
  return fetchedFiles(
    base.href,
    (file) => new URL(file, base).href,
    'check the model URL (a directory with config.json and its shards)',
    fetchFn,
  );
}

/** Browser entry: load the model directory at `baseUrl`. */
export function loadModelFromUrl(
  baseUrl: string | URL,
  opts: LoadOptions = {},
  fetchFn: typeof fetch = fetch,
): Promise<LoadedModel> {
  return loadModel(urlFiles(baseUrl, fetchFn), opts);
}

const manifestTooLarge = (where: string): never =>
  fail('config', `${where}: larger than ${MAX_CONFIG_BYTES} bytes, not a weights manifest; check the manifest URL`);

/** A weights manifest's bytes (at most MAX_CONFIG_BYTES + 1 of them), parsed and validated; `where` names it. */
export function parseManifest(bytes: Uint8Array, where: string): WeightsManifest {
  if (bytes.length > MAX_CONFIG_BYTES) manifestTooLarge(where);
  return validateManifest(parseJson(bytes, where), where);
}

/**
 * Read and validate the weights manifest at `url`: bounded like config.json, from the network
 * first and from the store's copy when the network fails.
 */
export async function fetchManifest(
  manifestUrl: string | URL,
  opts: Omit<LoadOptions, 'manifestEntry'> = {},
  fetchFn: typeof fetch = fetch,
): Promise<WeightsManifest> {
  const url = absoluteUrl(manifestUrl, 'manifestUrl').href;
  const { store } = opts;
  let bytes: Uint8Array;
  try {
    bytes = await fetchBody(url, fetchFn, 'check the manifest URL', {
      maxBytes: MAX_CONFIG_BYTES,
      tooLarge: () => manifestTooLarge(url),
      signal: opts.signal,
      stallTimeout: opts.stallTimeout,
    });
  } catch (e) {
    const copy =
      store && e instanceof PgmError && e.code === 'io'
        ? await store.get(manifestKey(url)).catch(() => undefined)
        : undefined;
    if (!copy) throw e;
    new Progress(opts.onProgress).warn(url, `${(e as Error).message}; using the manifest cached by an earlier load`);
    return parseManifest(copy, url);
  }
  const manifest = parseManifest(bytes, url);
  await store
    ?.put(manifestKey(url), bytes)
    .catch((e) =>
      new Progress(opts.onProgress).warn(
        url,
        `the manifest could not be stored in the cache (${reason(e)}); an offline reload will not find it`,
      ),
    );
  return manifest;
}

/**
 * Browser entry: read `weights-manifest.json` at `manifestUrl`, pick model `id` (or the
 * default) and load it, checking its shards against the manifest.
 */
export async function loadModelFromManifest(
  manifestUrl: string | URL,
  id?: string,
  opts: Omit<LoadOptions, 'manifestEntry'> = {},
  fetchFn: typeof fetch = fetch,
): Promise<LoadedModel> {
  const url = absoluteUrl(manifestUrl, 'manifestUrl');
  const entry = findModel(await fetchManifest(url, opts, fetchFn), id);
  const dir = entry.path.endsWith('/') ? entry.path : `${entry.path}/`;
  let base: URL;
  try {
    base = new URL(dir, url);
  } catch {
    return fail(
      'config',
      `${printable(url.href)}: model ${entry.id} has the path ${brief(entry.path)}, which names no URL relative to a ${url.protocol} manifest; give an absolute http(s) URL`,
    );
  }
  return loadModel(urlFiles(base, fetchFn), { ...opts, manifestEntry: entry });
}

/**
 * A model shipped inside the package (the packaged manifest's `id`, or its default), read from
 * where the app's bundler emitted its files. A bundler that copies no assets (esbuild, a page
 * with an import map) leaves them unreachable: then pass the URL of a hosted copy instead.
 */
export async function loadPackagedModel(
  id?: string,
  opts: Omit<LoadOptions, 'manifestEntry'> = {},
  fetchFn: typeof fetch = fetch,
): Promise<LoadedModel> {
  const entry = findModel(PACKAGED_MANIFEST, id);
  const urls = PACKAGED_FILES[entry.id];
  if (!urls) return loadModel(urlFiles(entry.path, fetchFn), { ...opts, manifestEntry: entry });
  const urlOf = (file: string): string =>
    urls[file]?.().href ?? fail('integrity', `model ${entry.id}: ${file} is not a file of the packaged model`);
  const hint = notEmittedHint(entry.id);
  const files = fetchedFiles(`packaged model ${entry.id}`, urlOf, hint, fetchFn);
  return loadModel(files, { ...opts, manifestEntry: entry });
}
