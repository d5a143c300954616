import { fail } from '../errors.js';
import { readSlice } from '../weights/local.js';

/**
 * Random access to the bytes of a (possibly multi-GB) file. Readers ask for the ranges they
 * need, so a checkpoint is never held in memory as a whole.
 */
export interface RandomAccessSource {
  /** File name used in error messages. */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes starting at `offset`; throws when the range is outside the file. */
  read(offset: number, length: number): Promise<Uint8Array>;
  close?(): Promise<void>;
}

/** Throws a `checkpoint` error unless `[offset, offset + length)` lies within `size`. */
export function checkRange(name: string, size: number, offset: number, length: number): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > size
  ) {
    fail(
      'checkpoint',
      `${name}: read of ${length} bytes at offset ${offset} is outside the file (${size} bytes); the file is truncated or corrupt`,
    );
  }
}

/** A source over bytes already in memory (tests, small uploads). */
export function bytesSource(bytes: Uint8Array, name = 'memory'): RandomAccessSource {
  return {
    name,
    size: bytes.length,
    async read(offset, length) {
      checkRange(name, bytes.length, offset, length);
      return bytes.subarray(offset, offset + length);
    },
  };
}

/** A source over a browser `Blob`/`File`; each read slices only the requested range. */
export function blobSource(blob: Blob, name = (blob as File).name ?? 'blob'): RandomAccessSource {
  return {
    name,
    size: blob.size,
    async read(offset, length) {
      checkRange(name, blob.size, offset, length);
      return readSlice(blob, offset, length, name);
    },
  };
}
