import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PgmError } from '../errors.js';
import { loadModel, type LoadOptions, type LoadedModel, type ModelFiles } from './load.js';

/** Model files in a directory on disk. */
export function diskFiles(dir: string): ModelFiles {
  return {
    location: dir,
    async read(file, maxBytes) {
      try {
        if (maxBytes === undefined) return new Uint8Array(await readFile(join(dir, file)));
        // At most maxBytes + 1 bytes, however large the file.
        const handle = await open(join(dir, file), 'r');
        try {
          const bytes = new Uint8Array(Math.min((await handle.stat()).size, maxBytes + 1));
          let done = 0;
          while (done < bytes.length) {
            const { bytesRead } = await handle.read(bytes, done, bytes.length - done, done);
            if (bytesRead === 0) break;
            done += bytesRead;
          }
          return bytes.subarray(0, done);
        } finally {
          await handle.close();
        }
      } catch (e) {
        throw new PgmError('io', `${join(dir, file)}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
      }
    },
  };
}

/** Open a converted model directory (see loadModel: its shards are read and verified as its weights are iterated). */
export function loadModelDir(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  return loadModel(diskFiles(dir), opts);
}
