/** Builders for hand-made pickles and zip archives used by the converter tests. */
import { deflateRawSync } from 'node:zlib';
import { crc32 } from '../../src/convert/zip.js';
import { PgmError } from '../../src/errors.js';
import { readWeights, type WeightMap, type Weights } from '../../src/model/tensor.js';

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

export const u16 = (n: number): number[] => [n & 0xff, (n >>> 8) & 0xff];
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

/**
 * A zip archive with stored (or deflated) entries. `zip64` writes the ZIP64 end records and
 * saturates the central-directory sizes/offsets so readers must use the ZIP64 extra field.
 */
export function makeZip(entries: ZipInput[], opts: { zip64?: boolean; comment?: string } = {}): Uint8Array {
  const chunks: number[][] = [];
  const central: number[][] = [];
  let offset = 0;
  const nameBytes = (s: string): number[] => [...new TextEncoder().encode(s)];
  for (const e of entries) {
    const name = nameBytes(e.name);
    const body = e.deflate ? new Uint8Array(deflateRawSync(e.data)) : e.data;
    const method = e.deflate ? 8 : 0;
    const crc = crc32(e.data);
    const local = [...u32(0x04034b50), ...u16(20), ...u16(0), ...u16(method), 0, 0, 0, 0, ...u32(crc), ...u32(body.length), ...u32(e.data.length), ...u16(name.length), ...u16(0), ...name];
    const sat = opts.zip64;
    const extra = sat ? [...u16(1), ...u16(24), ...u64(BigInt(e.data.length)), ...u64(BigInt(body.length)), ...u64(BigInt(offset))] : [];
    central.push([
      ...u32(0x02014b50), ...u16(45), ...u16(45), ...u16(0), ...u16(method), 0, 0, 0, 0, ...u32(crc),
      ...u32(sat ? 0xffffffff : body.length), ...u32(sat ? 0xffffffff : e.data.length), ...u16(name.length), ...u16(extra.length), ...u16(0),
      ...u16(0), ...u16(0), ...u32(0), ...u32(sat ? 0xffffffff : offset), ...name, ...extra,
    ]);
    chunks.push(local, [...body]);
    offset += local.length + body.length;
  }
  const cd = central.flat();
  const cdOffset = offset;
  const tail: number[] = [];
  if (opts.zip64) {
    const z64 = offset + cd.length;
    tail.push(...u32(0x06064b50), ...u64(44n), ...u16(45), ...u16(45), ...u32(0), ...u32(0), ...u64(BigInt(entries.length)), ...u64(BigInt(entries.length)), ...u64(BigInt(cd.length)), ...u64(BigInt(cdOffset)));
    tail.push(...u32(0x07064b50), ...u32(0), ...u64(BigInt(z64)), ...u32(1));
  }
  const comment = nameBytes(opts.comment ?? '');
  tail.push(...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(opts.zip64 ? 0xffff : entries.length), ...u16(opts.zip64 ? 0xffff : entries.length));
  tail.push(...u32(opts.zip64 ? 0xffffffff : cd.length), ...u32(opts.zip64 ? 0xffffffff : cdOffset), ...u16(comment.length), ...comment);
  return Uint8Array.from([...chunks.flat(), ...cd, ...tail]);
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
export const readAll = async (opened: Promise<{ weights: Weights }>): Promise<WeightMap> => readWeights((await opened).weights);
