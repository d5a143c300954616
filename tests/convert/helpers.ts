/** Builders for hand-made pickles and zip archives: the converter tests and the fuzzer (scripts/fuzz.ts) use them. */
import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../src/convert/zip.js';
import { PgmError } from '../../src/errors.js';
import { readWeights, type WeightMap, type Weights } from '../../src/weights/host-tensor.js';

type Part = number | string | Uint8Array | readonly number[];

/** Concatenate opcodes (numbers are single bytes, strings are latin-1 text) into a pickle. */
export function pk(...parts: Part[]): Uint8Array {
  const out: number[] = [];
  for (const p of parts) {
    if (typeof p === 'number') out.push(p);
    else if (typeof p === 'string') for (const c of p) out.push(c.charCodeAt(0));
    else out.push(...p);
  }
  return Uint8Array.from(out);
}

export const u32 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff];
export const u64 = (n: bigint): number[] => Array.from({ length: 8 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
/** SHORT_BINUNICODE */
export const str = (s: string): number[] => {
  const b = new TextEncoder().encode(s);
  return [0x8c, b.length, ...b];
};
/** GLOBAL module.name (text form). */
export const glob = (module: string, name: string): string => `c${module}\n${name}\n`;

export interface ZipInput {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}

const crcs = new WeakMap<Uint8Array, number>();
/** The CRC-32 of `data`, computed once per array (the fuzzer zips the same entries in every case). */
const crcOf = (data: Uint8Array): number => {
  let crc = crcs.get(data);
  if (crc === undefined) crcs.set(data, (crc = crc32(data)));
  return crc;
};

/**
 * A zip archive of stored (or deflated) entries with correct CRCs, local headers without extra
 * fields, and an optional archive comment. `zip64` writes the ZIP64 end records and saturates
 * the central directory's sizes and offsets, so readers must use the ZIP64 extra field.
 */
export function makeZip(entries: readonly ZipInput[], opts: { zip64?: boolean; comment?: string } = {}): Uint8Array {
  const utf8 = new TextEncoder();
  const zip64 = opts.zip64 ?? false;
  const files = entries.map((e) => ({
    name: utf8.encode(e.name),
    body: e.deflate ? new Uint8Array(deflateRawSync(e.data)) : e.data,
    method: e.deflate ? 8 : 0,
    size: e.data.length,
    crc: crcOf(e.data),
  }));
  const extra = zip64 ? 4 + 24 : 0;
  const dataSize = files.reduce((a, f) => a + 30 + f.name.length + f.body.length, 0);
  const cdSize = files.reduce((a, f) => a + 46 + f.name.length + extra, 0);
  const comment = utf8.encode(opts.comment ?? '');
  const out = new Uint8Array(dataSize + cdSize + (zip64 ? 56 + 20 : 0) + 22 + comment.length);
  const dv = new DataView(out.buffer);
  const set16 = (at: number, v: number) => dv.setUint16(at, v, true);
  const set32 = (at: number, v: number) => dv.setUint32(at, v, true);
  const set64 = (at: number, v: number) => dv.setBigUint64(at, BigInt(v), true);
  const saturated = (v: number) => (zip64 ? 0xffffffff : v);
  let at = 0;
  let cd = dataSize;
  for (const f of files) {
    set32(at, 0x04034b50);
    set16(at + 4, 20);
    set16(at + 8, f.method);
    set32(at + 14, f.crc);
    set32(at + 18, f.body.length);
    set32(at + 22, f.size);
    set16(at + 26, f.name.length);
    out.set(f.name, at + 30);
    out.set(f.body, at + 30 + f.name.length);
    set32(cd, 0x02014b50);
    set16(cd + 4, zip64 ? 45 : 20);
    set16(cd + 6, zip64 ? 45 : 20);
    set16(cd + 10, f.method);
    set32(cd + 16, f.crc);
    set32(cd + 20, saturated(f.body.length));
    set32(cd + 24, saturated(f.size));
    set16(cd + 28, f.name.length);
    set16(cd + 30, extra);
    set32(cd + 42, saturated(at));
    out.set(f.name, cd + 46);
    if (zip64) {
      const x = cd + 46 + f.name.length;
      set16(x, 1);
      set16(x + 2, 24);
      set64(x + 4, f.size);
      set64(x + 12, f.body.length);
      set64(x + 20, at);
    }
    at += 30 + f.name.length + f.body.length;
    cd += 46 + f.name.length + extra;
  }
  if (zip64) {
    set32(cd, 0x06064b50);
    set64(cd + 4, 44);
    set16(cd + 12, 45);
    set16(cd + 14, 45);
    set64(cd + 24, files.length);
    set64(cd + 32, files.length);
    set64(cd + 40, cdSize);
    set64(cd + 48, dataSize);
    set32(cd + 56, 0x07064b50);
    set64(cd + 64, cd);
    set32(cd + 72, 1);
    cd += 76;
  }
  set32(cd, 0x06054b50);
  set16(cd + 8, zip64 ? 0xffff : files.length);
  set16(cd + 10, zip64 ? 0xffff : files.length);
  set32(cd + 12, saturated(cdSize));
  set32(cd + 16, saturated(dataSize));
  set16(cd + 20, comment.length);
  out.set(comment, cd + 22);
  return out;
}

/** Run `f`; return the PgmError it throws (fails the test if it returns or throws anything else). */
export async function pgmError(f: () => unknown): Promise<PgmError> {
  try {
    await f();
  } catch (e) {
    if (e instanceof PgmError) return e;
    throw new Error(`expected a PgmError, got ${(e as Error)?.stack ?? String(e)}`);
  }
  throw new Error('expected a PgmError, but the call succeeded');
}

/** Open a model and read every tensor: its shards are read, verified and checked only then. */
export const readAll = async (opened: Promise<{ weights: Weights }>): Promise<WeightMap> =>
  readWeights((await opened).weights);
