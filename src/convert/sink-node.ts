import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PgmError } from '../errors.js';
import type { FileSink } from '../model/safetensors.js';
import type { DirSink } from './convert.js';

/** What to do about a failed file operation, by errno code. */
const ADVICE: Record<string, string> = {
  ENOSPC: 'free some disk space or convert into another directory',
  EDQUOT: 'free some of your disk quota or convert into another directory',
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

/**
 * Write a model directory on disk. Files are written as `<name>.partial` and renamed when
 * complete, so an interrupted conversion never leaves a plausible-looking shard behind.
 */
export async function dirSink(dir: string): Promise<DirSink> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (e) {
    throw new PgmError('io', `${dir}: cannot create output directory (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  return {
    async create(file): Promise<FileSink> {
      const path = join(dir, file);
      const partial = `${path}.partial`;
      const fh = await onDisk(partial, 'create the file', () => open(partial, 'w'));
      const hash = createHash('sha256');
      let size = 0;
      return {
        async write(bytes) {
          hash.update(bytes);
          size += bytes.length;
          let done = 0;
          while (done < bytes.length) done += (await onDisk(partial, 'write', () => fh.write(bytes, done, bytes.length - done))).bytesWritten;
        },
        async close() {
          try {
            await onDisk(partial, 'finish writing', () => fh.close());
            await onDisk(path, 'rename the finished file into place', () => rename(partial, path));
          } catch (e) {
            await rm(partial, { force: true }).catch(() => undefined);
            throw e;
          }
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
      const path = join(dir, file);
      await onDisk(`${path}.partial`, 'write', () => writeFile(`${path}.partial`, text));
      await onDisk(path, 'rename the finished file into place', () => rename(`${path}.partial`, path));
    },
  };
}
