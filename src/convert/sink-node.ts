import { createHash } from 'node:crypto';
import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PgmError } from '../errors.js';
import type { FileSink } from '../model/safetensors.js';
import type { DirSink } from './convert.js';

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
      const fh = await open(partial, 'w');
      const hash = createHash('sha256');
      let size = 0;
      return {
        async write(bytes) {
          hash.update(bytes);
          size += bytes.length;
          let done = 0;
          while (done < bytes.length) done += (await fh.write(bytes, done, bytes.length - done)).bytesWritten;
        },
        async close() {
          await fh.close();
          await rename(partial, path);
          return { size, sha256: hash.digest('hex') };
        },
        async abort() {
          await fh.close();
          await rm(partial, { force: true });
        },
      };
    },
    async writeText(file, text) {
      await writeFile(`${join(dir, file)}.partial`, text);
      await rename(`${join(dir, file)}.partial`, join(dir, file));
    },
  };
}
