/**
 * Checkpoints converted in the page: the authors' Lightning `.ckpt` given as a Blob (a File the
 * user picked or dropped) is read lazily through Blob.slice (the pickle, then each EMA tensor a
 * piece at a time: optimizer states are never read), converted to f16 on the fly and written
 * into a model store as a sharded model under a local id, `local:<name>`, so that the next load
 * reads it from the store, offline, without converting again. Memory: one shard (64 MiB by
 * default) plus a piece of a tensor.
 */
import { brief, fail, PgmError, printable } from '../errors.js';
import { configKey, memoryStore, pruneStore, shardKey, type ModelStore } from '../weights/cache.js';
import type { ModelDirConfig } from '../weights/config.js';
import { checkAborted } from '../weights/fetch.js';
import { DTYPE_BYTES } from '../weights/floats.js';
import { loadModel, type LoadedModel, type LoadOptions, type LoadProgress } from '../weights/load.js';
import {
  folderFiles,
  isLocalId,
  isModelFolder,
  localId,
  storedFiles,
  type LocalId,
  type ModelFolder,
} from '../weights/local.js';
import { memorySink } from '../weights/safetensors.js';
import { Checkpoint } from './checkpoint.js';
import { convertCheckpoint, inspectCheckpoint, type ConvertOptions, type DirSink } from './convert.js';
import { blobSource } from './source.js';

export interface ImportOptions extends Omit<ConvertOptions, 'dtype' | 'pieceValues'> {
  /** The model's name in the store, `local:<name>` (default: the file's name without `.ckpt`); a model of that name is replaced. */
  name?: string;
  /** f16 (default: half the memory and download, what the released f32 weights round to) or f32. */
  dtype?: 'f16' | 'f32';
  /** `convert` events: the model's bytes written so far, and in all. */
  onProgress?: (p: LoadProgress) => void;
}

export interface ImportedModel {
  /** What `createEngine({ model })` and loadLocalModel take: `local:<name>`. */
  id: LocalId;
  dirConfig: ModelDirConfig;
  params: number;
  /** state_dict entries outside the backbone, not converted. */
  ignored: string[];
  warnings: string[];
}

/** What loadLocalModel takes: a converted model folder, a checkpoint (a Blob), or the id of a local model in the store. */
export type LocalModel = ModelFolder | Blob | LocalId;

export const isLocalModel = (v: unknown): v is LocalModel =>
  isModelFolder(v) || (typeof Blob !== 'undefined' && v instanceof Blob) || isLocalId(v);

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/**
 * A DirSink into `store`: each shard in one buffer of its size, put under its sha256 when it is
 * complete (`onBytes` counts what is written); config.json under `id` on commit, which makes
 * the model the store's at once. The index file is not kept: loadModel reads config.json and
 * the shards. An abort leaves the shards put so far to pruneStore.
 */
export function storeSink(store: ModelStore, id: string, onBytes?: (bytes: number) => void): DirSink {
  let config: string | undefined;
  return {
    async create(file, size) {
      const sink = memorySink(size);
      return {
        async write(bytes) {
          await sink.write(bytes);
          onBytes?.(bytes.length);
        },
        async close() {
          const written = await sink.close();
          await store.put(shardKey(written.sha256), sink.bytes()).catch((e) => {
            const why = printable(e instanceof Error ? `${e.name}: ${e.message}` : String(e));
            throw new PgmError(
              'io',
              `${id}: the model cache refused ${file} (${(written.size / 2 ** 20).toFixed(1)} MiB: ${why}); free some of this browser's storage for the site (clear cached models) and try again`,
              { cause: e },
            );
          });
          return written;
        },
      };
    },
    async writeText(file, text) {
      if (file === 'config.json') config = text;
    },
    async commit() {
      await store.put(configKey(id), new TextEncoder().encode(config));
      await pruneStore(store).catch(() => undefined); // the shards of a model this one replaced
    },
    async abort() {
      await pruneStore(store).catch(() => undefined);
    },
  };
}

/** `local:<name>` for a checkpoint: the name given, else its file name without `.ckpt`. */
function checkpointId(checkpoint: Blob, name: string | undefined): LocalId {
  const file = (checkpoint as Partial<File>).name;
  return localId(name ?? (file ? file.replace(/\.ckpt$/i, '') || file : 'checkpoint'));
}

/**
 * The local id `model` is kept under, the one loadLocalModel resolves with: a folder's
 * `local:<folder name>` (`local:model` for loose files), a checkpoint's `local:<file name
 * without .ckpt>`, an id itself. Reads nothing: an app that loads the model elsewhere (in a
 * worker) knows what to load next time.
 */
export function localIdOf(model: LocalModel): LocalId {
  if (isLocalId(model)) return model;
  if (isModelFolder(model)) return folderFiles(model).location;
  if (typeof Blob !== 'undefined' && model instanceof Blob) return checkpointId(model, undefined);
  return fail(
    'option',
    `localIdOf: ${brief(model)} is not a local model: give a model folder (File[], FileList, a directory handle), a .ckpt Blob or a local:<name> id`,
  );
}

/**
 * Convert a Lightning `.ckpt` (a Blob, read lazily) into `store` as a sharded model, EMA
 * weights in f16 by default; options already checked (the API's importCheckpoint checks them).
 */
export async function importCheckpoint(
  checkpoint: Blob,
  store: ModelStore,
  opts: ImportOptions & Pick<ConvertOptions, 'pieceValues'> = {},
): Promise<ImportedModel> {
  const file = (checkpoint as Partial<File>).name || 'checkpoint';
  const id = checkpointId(checkpoint, opts.name);
  const start = now();
  checkAborted(opts.signal, `converting ${file}`);
  const ckpt = await Checkpoint.open(blobSource(checkpoint, file));
  const dtype = opts.dtype ?? 'f16';
  const total = inspectCheckpoint(ckpt, opts).parameters.reduce(
    (a, p) => a + p.shape.reduce((x, y) => x * y, 1) * DTYPE_BYTES[dtype === 'f16' ? 'F16' : 'F32'],
    0,
  );
  let written = 0;
  const emit = (ms?: number) =>
    opts.onProgress?.({ phase: 'convert', file, loaded: written, total, loadedBytes: written, totalBytes: total, ms });
  emit();
  const sink = storeSink(store, id, (bytes) => {
    written = Math.min(total, written + bytes); // the shards' headers are not counted in total
    emit();
  });
  const r = await convertCheckpoint(ckpt, sink, { ...opts, dtype });
  emit(now() - start);
  return { id, dirConfig: r.dirConfig, params: r.params, ignored: r.ignored, warnings: r.warnings };
}

/**
 * Load a model from the user's machine: a converted model folder (read from its files, and kept
 * in the store under `local:<folder name>`), a checkpoint (converted into the store, in memory
 * where the load has none, then read from it), or `local:<name>` (from the store). Resolves with
 * the weights and the model's local id.
 */
export async function loadLocalModel(
  model: LocalModel,
  opts: Omit<LoadOptions, 'manifestEntry'> = {},
): Promise<LoadedModel & { id: LocalId }> {
  if (isLocalId(model)) {
    const store =
      opts.store ??
      fail(
        'option',
        `${model}: local models live in the model cache, and this load has none (cache: false, or no Cache API here)`,
      );
    return { id: model, ...(await loadModel(storedFiles(store, model), opts)) };
  }
  if (isModelFolder(model)) {
    const files = folderFiles(model);
    return { id: files.location, ...(await loadModel(files, opts)) };
  }
  const store = opts.store ?? memoryStore();
  const { id } = await importCheckpoint(model, store, { onProgress: opts.onProgress, signal: opts.signal });
  return { id, ...(await loadModel(storedFiles(store, id), opts)) };
}
