import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { PgmError, fail } from '../errors.js';
import { checkRange, type RandomAccessSource } from './source.js';

/** Open a file for positional reads. Call `close()` when done. */
export async function fileSource(path: string): Promise<RandomAccessSource & { close(): Promise<void> }> {
  const name = basename(path);
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    throw new PgmError('io', `${path}: cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, {
      cause: e,
    });
  }
  const fh = handle;
  const { size } = await fh.stat();
  return {
    name,
    size,
    async read(offset, length) {
      checkRange(name, size, offset, length);
      const buf = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
        if (bytesRead === 0) fail('io', `${name}: short read (${done} of ${length} bytes at offset ${offset})`);
        done += bytesRead;
      }
      return buf;
    },
    close: () => fh.close(),
  };
}
