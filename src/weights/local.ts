/**
 * Models on the user's machine, no server needed: a converted model folder picked or dropped in
 * the page (config.json and its shards as Files, or a directory handle), read lazily through
 * Blob.slice; and the models the store keeps under a local id, `local:<name>` (folders loaded
 * before, checkpoints converted in the page by src/convert/import.ts), listed by localModels.
 */
import { fail, PgmError, printable } from '../errors.js';
import { cacheStore, configKey, shardKey, type ModelStore } from './cache.js';
import type { ModelDirConfig } from './config.js';
import { checkAborted, type BodyOptions } from './fetch.js';
import { parseModelDirConfig, REMEDY, type ModelFiles } from './load.js';
import { parameterTotals } from './parameters.js';

/** A converted model folder the user picked: its files (a FileList or File[]: config.json and its shards), or its directory handle. */
export type ModelFolder = FileList | readonly File[] | FileSystemDirectoryHandle;

/** The ids of local models in a store: `local:<name>`. */
export const LOCAL_PREFIX = 'local:';
/** A local model's id. */
export type LocalId = `local:${string}`;
export const localId = (name: string): LocalId => `local:${name}`;
export const isLocalId = (v: unknown): v is LocalId => typeof v === 'string' && v.startsWith(LOCAL_PREFIX);

const HINT = 'pick a converted model folder (config.json and its .safetensors shards), or a .ckpt checkpoint';

/** Bytes read from a local file per step: the unit of progress events and of checks for an abort. */
const CHUNK = 8 * 2 ** 20;

const isFileList = (v: unknown): v is FileList | readonly File[] =>
  (typeof FileList !== 'undefined' && v instanceof FileList) ||
  (Array.isArray(v) && v.length > 0 && v.every((f) => typeof File !== 'undefined' && f instanceof File));

const isDirectoryHandle = (v: unknown): v is FileSystemDirectoryHandle =>
  typeof v === 'object' &&
  v !== null &&
  (v as { kind?: unknown }).kind === 'directory' &&
  typeof (v as { getFileHandle?: unknown }).getFileHandle === 'function';

export const isModelFolder = (v: unknown): v is ModelFolder => isFileList(v) || isDirectoryHandle(v);

/** `length` bytes of `blob` at `offset`; a file that cannot be read (moved, changed on disk since it was picked) is an `io` error naming `where`. */
export async function readSlice(blob: Blob, offset: number, length: number, where: string): Promise<Uint8Array> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer());
  } catch (e) {
    throw new PgmError(
      'io',
      `${where}: cannot read (${printable(e instanceof Error ? `${e.name}: ${e.message}` : String(e))}); the file may have been moved or changed since it was picked: pick it again`,
      { cause: e },
    );
  }
  if (bytes.length !== length)
    fail(
      'io',
      `${where}: short read (${bytes.length} of ${length} bytes at offset ${offset}); the file changed since it was picked: pick it again`,
    );
  return bytes;
}

/** A local file under a load's limits (at most maxBytes + 1 bytes), in steps of 8 MiB with progress and abort. */
async function readFile(blob: Blob, where: string, o: BodyOptions = {}): Promise<Uint8Array> {
  const bytes = new Uint8Array(Math.min(blob.size, (o.maxBytes ?? Infinity) + 1));
  for (let done = 0; done < bytes.length;) {
    checkAborted(o.signal);
    const end = Math.min(bytes.length, done + CHUNK);
    bytes.set(await readSlice(blob, done, end - done, where), done);
    done = end;
    o.onBytes?.(done);
  }
  return bytes;
}

/**
 * The files of a model folder the user picked, under the local id of the folder's name (its
 * shards and config.json go into the store as that model). Files picked with their folder
 * (`<input webkitdirectory>`) carry its path; loose files (several picked, or dropped) are one
 * folder named "model". The files must hold exactly one config.json.
 */
export function folderFiles(folder: ModelFolder): ModelFiles & { location: LocalId } {
  if (isDirectoryHandle(folder)) {
    const open = async (file: string): Promise<File> => {
      try {
        return await (await folder.getFileHandle(file)).getFile();
      } catch (e) {
        throw new PgmError(
          'io',
          `${folder.name}/${file}: ${(e as Error)?.name === 'NotFoundError' ? 'no such file in the folder' : `cannot open (${printable((e as Error)?.message ?? String(e))})`}; ${HINT}`,
          { cause: e },
        );
      }
    };
    return {
      location: localId(folder.name),
      remedy: REMEDY.disk,
      read: async (file, o) => readFile(await open(file), `${folder.name}/${file}`, o),
    };
  }
  const files = [...folder];
  const pathOf = (f: File): string => f.webkitRelativePath || f.name;
  const dirOf = (f: File): string => pathOf(f).split('/').slice(0, -1).join('/');
  const configs = files.filter((f) => f.name === 'config.json');
  if (configs.length === 0)
    fail(
      'config',
      `no config.json among the ${files.length} file(s) picked (${files.slice(0, 4).map(pathOf).join(', ')}${files.length > 4 ? ', ...' : ''}); ${HINT}`,
    );
  if (configs.length > 1)
    fail(
      'config',
      `several config.json among the files picked (${configs.map(pathOf).join(', ')}): pick one model folder`,
    );
  const dir = dirOf(configs[0]);
  const name = dir.split('/').pop() || 'model';
  const byName = new Map(files.filter((f) => dirOf(f) === dir).map((f) => [f.name, f]));
  return {
    location: localId(name),
    remedy: REMEDY.disk,
    read(file, o) {
      const f =
        byName.get(file) ??
        fail('io', `${name}/${file}: not among the files picked (config.json lists it); pick the whole folder`);
      return readFile(f, `${name}/${file}`, o);
    },
  };
}

/** The stored config.json of local model `id`, parsed; undefined when the store has none. */
async function storedConfig(store: ModelStore, id: string): Promise<ModelDirConfig | undefined> {
  const bytes = await store.get(configKey(id));
  return bytes && parseModelDirConfig(new TextDecoder().decode(bytes), `${id}/config.json`);
}

/** The files of local model `id` (`local:<name>`), read from `store`: what loadModel reads when the load itself has no store. */
export function storedFiles(store: ModelStore, id: string): ModelFiles {
  const gone = async (what: string): Promise<never> => {
    const known = (await localModels(store).catch(() => [])).map((m) => m.id);
    return fail(
      'io',
      `${printable(id)}: ${what} is not in this browser's model cache (it holds ${known.length ? known.join(', ') : 'no local model'}); ${HINT} again`,
    );
  };
  const get = async (key: string, what: string): Promise<Uint8Array> => {
    let bytes: Uint8Array | undefined;
    try {
      bytes = await store.get(key);
    } catch (e) {
      throw new PgmError(
        'io',
        `${id}: the model cache could not be read (${printable((e as Error)?.message ?? String(e))})`,
        { cause: e },
      );
    }
    return bytes ?? gone(what);
  };
  return {
    location: id,
    remedy: `the copy in this browser's model cache is damaged; ${HINT} again`,
    async read(file) {
      if (file === 'config.json') return get(configKey(id), 'the model');
      const shard = (await storedConfig(store, id))?.shards.find((s) => s.file === file) ?? (await gone(file));
      return get(shardKey(shard.sha256), file);
    },
  };
}

/** A local model kept in the store. */
export interface LocalModelInfo {
  /** What `createEngine({ model })` takes: `local:<name>`. */
  id: LocalId;
  dirConfig: ModelDirConfig;
  /** The size of its shards. */
  bytes: number;
  /** How many values its backbone has. */
  params: number;
}

/** The local models in `store` (default: this browser's model cache): converted checkpoints and folders loaded before, by id. */
export async function localModels(store: ModelStore | undefined = cacheStore()): Promise<LocalModelInfo[]> {
  if (!store) return [];
  const ids = (await store.keys())
    .filter((k) => k.startsWith(configKey(LOCAL_PREFIX)))
    .map((k) => k.slice(configKey('').length));
  const found: LocalModelInfo[] = [];
  for (const id of ids.sort()) {
    const dirConfig = await storedConfig(store, id).catch(() => undefined); // unreadable: no model to offer
    if (dirConfig)
      found.push({
        id: id as LocalId,
        dirConfig,
        bytes: dirConfig.shards.reduce((a, s) => a + s.size, 0),
        params: parameterTotals(dirConfig.model).values,
      });
  }
  return found;
}
