import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { PgmError } from '../errors.js';
import { checkAborted } from './fetch.js';
import { loadModel, REMEDY, type LoadOptions, type LoadedModel, type ModelFiles } from './load.js';

/** Bytes read from disk per step: the unit of progress events and of checks for an abort. */
const CHUNK = 8 * 2 ** 20;

/** Model files in a directory on disk. */
export function diskFiles(dir: string): ModelFiles {
  return {
    location: dir,
    remedy: REMEDY.disk,
    async read(file, options = {}) {
      const path = join(dir, file);
      try {
        // At most maxBytes + 1 bytes, however large the file.
        const handle = await open(path, 'r');
        try {
          const size = (await handle.stat()).size;
          const bytes = new Uint8Array(Math.min(size, (options.maxBytes ?? Infinity) + 1));
          let done = 0;
          while (done < bytes.length) {
            checkAborted(options.signal);
            const { bytesRead } = await handle.read(bytes, done, Math.min(CHUNK, bytes.length - done), done);
            if (bytesRead === 0) break;
            done += bytesRead;
            options.onBytes?.(done);
          }
          return bytes.subarray(0, done);
        } finally {
          await handle.close();
        }
      } catch (e) {
        if (e instanceof PgmError) throw e;
        throw new PgmError(
          'io',
          `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
          { cause: e },
        );
      }
    },
  };
}

/** Open a converted model directory (see loadModel: its shards are read and verified as its weights are iterated). */
export function loadModelDir(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  return loadModel(diskFiles(dir), opts);
}
