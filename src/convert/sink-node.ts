import { createHash, randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { copyFile, link, mkdir, open, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PgmError } from '../errors.js';
import type { FileSink } from '../weights/safetensors.js';
import type { DirSink } from './convert.js';

/** What to do about a failed file operation, by errno code. */
const ADVICE: Record<string, string> = {
  ENOSPC: 'free some disk space or convert into another directory',
  EDQUOT: 'free some of your disk quota or convert into another directory',
  EFBIG: 'the file is larger than this file system or the process limit (ulimit -f) allows',
  EACCES: 'check the permissions of the output directory',
  EPERM: 'check the permissions of the output directory',
  EROFS: 'the file system is read-only; convert into another directory',
};

/** Run a file operation on `path`; a failure is an `io` error naming the path, the errno code and what to do. */
async function onDisk<T>(path: string, what: string, op: () => Promise<T>): Promise<T> {
  try {
    return await op();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const advice = code && Object.hasOwn(ADVICE, code) ? `; ${ADVICE[code]}` : '';
    throw new PgmError('io', `${path}: cannot ${what} (${(e as Error).message})${advice}`, { cause: e });
  }
}

/** Temporaries and set-aside shards this module writes: `.<name>.<12 hex>.partial`, `<stem>.replaced-<12 hex>.safetensors`. */
const TEMPORARY = /^\..+\.[0-9a-f]{12}\.partial$/;
const SET_ASIDE = /\.replaced-[0-9a-f]{12}\.safetensors$/;
/** The files a conversion writes (convert.ts's shard names and index). */
const CONVERTED = /^(model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json)$/;

/**
 * A fresh name beside `path` for a file being written (`.<name>.<random>.partial`): nobody can
 * plant a link there in advance, and it is opened with O_EXCL (`wx`), so none is followed.
 */
export function temporaryPath(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.partial`);
}

/** Write `text` to `path` whole or not at all: into a temporary beside it, created exclusively, then renamed over it. */
export async function replaceFile(path: string, text: string): Promise<void> {
  const partial = temporaryPath(path);
  try {
    await onDisk(partial, 'write', () => writeFile(partial, text, { flag: 'wx' }));
    await onDisk(path, 'rename the finished file into place', () => rename(partial, path));
  } catch (e) {
    await rm(partial, { force: true }).catch(() => undefined);
    throw e;
  }
}

/** The shard files the model now in `dir` lists (none when there is no readable config.json). */
async function listedShards(dir: string): Promise<{ config?: Record<string, unknown>; shards: string[] }> {
  try {
    const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as { shards?: { file?: unknown }[] };
    const shards = (Array.isArray(config.shards) ? config.shards : [])
      .map((s) => s?.file)
      .filter((f): f is string => typeof f === 'string' && /^[\w.-]+\.safetensors$/.test(f));
    return { config, shards };
  } catch {
    return { shards: [] };
  }
}

/**
 * Make the staged files (`staged`: final name -> temporary path) the model of `dir`, so that at
 * every instant the directory holds a model that loads, the old one or the new. The old shards
 * whose names the new model reuses are first set aside under new names (hard links, else
 * copies) and the old config.json is pointed at them (one rename); then the new shards are
 * renamed into place, and the new config.json last (one rename: from then on the directory is
 * the new model). Finally the files of the old model that the new one does not use are removed:
 * set-aside shards, old shards and index, temporaries of interrupted conversions.
 */
async function replaceModel(dir: string, staged: Map<string, string>): Promise<void> {
  const old = await listedShards(dir);
  const reused = old.shards.filter((f) => staged.has(f));
  if (old.config && reused.length) {
    const moved = new Map<string, string>();
    for (const file of reused) {
      const aside = file.replace(/\.safetensors$/, `.replaced-${randomBytes(6).toString('hex')}.safetensors`);
      await onDisk(join(dir, aside), 'set the old shard aside', () =>
        link(join(dir, file), join(dir, aside)).catch(() =>
          copyFile(join(dir, file), join(dir, aside), constants.COPYFILE_EXCL),
        ),
      );
      moved.set(file, aside);
    }
    const shards = (old.config.shards as { file: string }[]).map((s) => ({ ...s, file: moved.get(s.file) ?? s.file }));
    await replaceFile(join(dir, 'config.json'), `${JSON.stringify({ ...old.config, shards }, null, 2)}\n`);
  }
  for (const [file, partial] of staged)
    if (file !== 'config.json')
      await onDisk(join(dir, file), 'rename the finished file into place', () => rename(partial, join(dir, file)));
  const config = staged.get('config.json');
  if (config)
    await onDisk(join(dir, 'config.json'), 'rename the finished file into place', () =>
      rename(config, join(dir, 'config.json')),
    );
  const stale = (name: string) =>
    !staged.has(name) &&
    (old.shards.includes(name) || CONVERTED.test(name) || SET_ASIDE.test(name) || TEMPORARY.test(name));
  for (const name of (await readdir(dir)).filter(stale))
    await rm(join(dir, name), { force: true }).catch(() => undefined);
}

/**
 * Write a model directory on disk. Every file goes to a temporary beside its final name, and
 * `commit` makes them the directory's model at once (see replaceModel); `abort` removes them. A
 * conversion interrupted at any moment leaves the directory's old model (or none) loadable.
 */
export async function dirSink(dir: string): Promise<DirSink> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new PgmError(
      'io',
      `${dir}: cannot create output directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      { cause: e },
    );
  }
  const staged = new Map<string, string>();
  const partials = new Set<string>();
  const stage = (file: string): string => {
    const partial = temporaryPath(join(dir, file));
    partials.add(partial);
    return partial;
  };
  return {
    async create(file): Promise<FileSink> {
      const partial = stage(file);
      const fh = await onDisk(partial, 'create the file', () => open(partial, 'wx'));
      const hash = createHash('sha256');
      let size = 0;
      return {
        async write(bytes) {
          hash.update(bytes);
          size += bytes.length;
          let done = 0;
          while (done < bytes.length)
            done += (await onDisk(partial, 'write', () => fh.write(bytes, done, bytes.length - done))).bytesWritten;
        },
        async close() {
          await onDisk(partial, 'finish writing', () => fh.close());
          staged.set(file, partial);
          return { size, sha256: hash.digest('hex') };
        },
        async abort() {
          // Already failing: the first error is the one to report.
          await fh.close().catch(() => undefined);
          await rm(partial, { force: true }).catch(() => undefined);
        },
      };
    },
    async writeText(file, text) {
      const partial = stage(file);
      await onDisk(partial, 'write', () => writeFile(partial, text, { flag: 'wx' }));
      staged.set(file, partial);
    },
    async commit() {
      await replaceModel(dir, staged);
      partials.clear();
    },
    async abort() {
      await Promise.all([...partials].map((p) => rm(p, { force: true }).catch(() => undefined)));
      partials.clear();
    },
  };
}
