import { PgmError, fail } from '../errors.js';
import type { RandomAccessSource } from './source.js';

/** One file inside a zip archive, from its central-directory record. */
export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflate. */
  method: number;
  compressedSize: number;
  size: number;
  crc32: number;
  localHeaderOffset: number;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
/** The central directory of a checkpoint is small; a bigger one is corrupt or hostile. */
const MAX_CENTRAL_DIRECTORY = 256 * 1024 * 1024;

const utf8 = new TextDecoder('utf-8');

let crcTable: Uint32Array | undefined;
/** CRC-32 (IEEE), as stored in zip headers. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  const table = crcTable;
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = table[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return ~c >>> 0;
}

const view = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/**
 * A zip archive read lazily through a RandomAccessSource: only the end records and the
 * central directory are read up front; an entry's bytes are read when asked for.
 */
export class ZipArchive {
  private readonly byName = new Map<string, ZipEntry>();
  private readonly dataOffsets = new Map<string, number>();

  private constructor(
    readonly source: RandomAccessSource,
    entries: ZipEntry[],
  ) {
    for (const e of entries) {
      if (this.byName.has(e.name)) this.bad(`duplicate entry ${JSON.stringify(e.name)}`);
      this.byName.set(e.name, e);
    }
  }

  private bad(what: string): never {
    return fail('checkpoint', `${this.source.name}: ${what}`);
  }

  static async open(source: RandomAccessSource): Promise<ZipArchive> {
    const bad = (what: string): never => fail('checkpoint', `${source.name}: ${what}`);
    if (source.size < EOCD_SIZE)
      bad(`not a zip archive (${source.size} bytes, too small for an end-of-central-directory record)`);
    const tailLength = Math.min(source.size, EOCD_SIZE + MAX_COMMENT + 20);
    const tailStart = source.size - tailLength;
    const tail = await source.read(tailStart, tailLength);
    const tv = view(tail);
    let eocd = -1;
    for (let i = tail.length - EOCD_SIZE; i >= 0; i--) {
      if (tv.getUint32(i, true) === SIG_EOCD && i + EOCD_SIZE + tv.getUint16(i + 20, true) <= tail.length) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0)
      bad(
        'not a zip archive (no end-of-central-directory record); expected a checkpoint written by torch.save in PyTorch >= 1.6',
      );
    let entryCount = tv.getUint16(eocd + 10, true);
    let cdSize = tv.getUint32(eocd + 12, true);
    let cdOffset = tv.getUint32(eocd + 16, true);
    if (tv.getUint16(eocd + 4, true) !== 0 || tv.getUint16(eocd + 6, true) !== 0)
      bad('multi-disk zip archives are not supported');

    const locator = eocd - 20;
    if (locator >= 0 && tv.getUint32(locator, true) === SIG_ZIP64_LOCATOR) {
      const z64Offset = toSafe(tv.getBigUint64(locator + 8, true), source.name, 'ZIP64 end record offset');
      if (z64Offset + 56 > tailStart + locator) bad(`ZIP64 end record offset ${z64Offset} is out of range`);
      const z = view(await source.read(z64Offset, 56));
      if (z.getUint32(0, true) !== SIG_ZIP64_EOCD) bad('bad ZIP64 end-of-central-directory signature');
      entryCount = toSafe(z.getBigUint64(32, true), source.name, 'ZIP64 entry count');
      cdSize = toSafe(z.getBigUint64(40, true), source.name, 'ZIP64 central directory size');
      cdOffset = toSafe(z.getBigUint64(48, true), source.name, 'ZIP64 central directory offset');
    }
    if (cdSize > MAX_CENTRAL_DIRECTORY) bad(`central directory of ${cdSize} bytes is implausibly large`);
    if (cdOffset + cdSize > source.size)
      bad(
        `central directory (${cdSize} bytes at ${cdOffset}) extends past the end of the file (${source.size} bytes); the file is truncated`,
      );
    if (entryCount * CENTRAL_SIZE > cdSize)
      bad(`${entryCount} entries cannot fit in a ${cdSize}-byte central directory`);

    const cd = await source.read(cdOffset, cdSize);
    const cv = view(cd);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < entryCount; i++) {
      if (p + CENTRAL_SIZE > cd.length || cv.getUint32(p, true) !== SIG_CENTRAL)
        bad(`bad central directory record #${i} at offset ${cdOffset + p}`);
      const flags = cv.getUint16(p + 8, true);
      const method = cv.getUint16(p + 10, true);
      const crc = cv.getUint32(p + 16, true);
      let compressedSize = cv.getUint32(p + 20, true);
      let size = cv.getUint32(p + 24, true);
      const nameLength = cv.getUint16(p + 28, true);
      const extraLength = cv.getUint16(p + 30, true);
      const commentLength = cv.getUint16(p + 32, true);
      let localHeaderOffset = cv.getUint32(p + 42, true);
      const end = p + CENTRAL_SIZE + nameLength + extraLength + commentLength;
      if (end > cd.length) bad(`central directory record #${i} overruns the directory`);
      const name = utf8.decode(cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLength));
      // ZIP64 extended information: only the fields saturated in the fixed record are present, in this order.
      let x = p + CENTRAL_SIZE + nameLength;
      const extraEnd = x + extraLength;
      while (x + 4 <= extraEnd) {
        const id = cv.getUint16(x, true);
        const len = cv.getUint16(x + 2, true);
        if (x + 4 + len > extraEnd) bad(`entry ${name}: extra field overruns its record`);
        if (id === 0x0001) {
          let f = x + 4;
          const next = (what: string): number => {
            if (f + 8 > x + 4 + len) bad(`entry ${name}: ZIP64 extra field lacks the ${what}`);
            const v = toSafe(cv.getBigUint64(f, true), source.name, `entry ${name} ${what}`);
            f += 8;
            return v;
          };
          if (size === 0xffffffff) size = next('size');
          if (compressedSize === 0xffffffff) compressedSize = next('compressed size');
          if (localHeaderOffset === 0xffffffff) localHeaderOffset = next('local header offset');
        }
        x += 4 + len;
      }
      if (flags & 1) bad(`entry ${name} is encrypted`);
      if (method !== 0 && method !== 8)
        bad(`entry ${name} uses compression method ${method} (only stored and deflate are supported)`);
      if (method === 0 && compressedSize !== size)
        bad(`stored entry ${name} has compressed size ${compressedSize} != size ${size}`);
      // DEFLATE cannot expand more than ~1032:1; a larger claim is corrupt or a zip bomb.
      if (method === 8 && size > compressedSize * 1032 + 1024)
        bad(`entry ${name} claims ${size} bytes from ${compressedSize} compressed bytes`);
      if (localHeaderOffset + LOCAL_SIZE + compressedSize > cdOffset)
        bad(`entry ${name} (${compressedSize} bytes at ${localHeaderOffset}) overlaps the central directory`);
      entries.push({ name, method, compressedSize, size, crc32: crc, localHeaderOffset });
      p = end;
    }
    return new ZipArchive(source, entries);
  }

  get entries(): ZipEntry[] {
    return [...this.byName.values()];
  }

  get(name: string): ZipEntry | undefined {
    return this.byName.get(name);
  }

  /** The entry's bytes in `[start, end)` (decompressed). Full reads are CRC-checked. */
  async read(name: string, start = 0, end?: number): Promise<Uint8Array> {
    for await (const bytes of this.chunks(name, start, end)) return bytes;
    return new Uint8Array(0);
  }

  /**
   * The entry's bytes in `[start, end)` (decompressed), in pieces of at most `chunkBytes`
   * (Infinity: one piece): a stored entry is read piece by piece, so no more than one piece is
   * in memory; a deflated one is inflated whole, once. Full reads are CRC-checked, after the
   * last piece.
   */
  async *chunks(name: string, start = 0, end?: number, chunkBytes = Infinity): AsyncGenerator<Uint8Array> {
    const entry = this.byName.get(name) ?? this.bad(`missing entry ${JSON.stringify(name)}`);
    const stop = end ?? entry.size;
    if (!(
      Number.isSafeInteger(start) &&
      Number.isSafeInteger(stop) &&
      start >= 0 &&
      start <= stop &&
      stop <= entry.size
    )) {
      this.bad(`entry ${name}: range [${start}, ${stop}) is outside its ${entry.size} bytes`);
    }
    if (!(chunkBytes >= 1)) this.bad(`entry ${name}: pieces of ${chunkBytes} bytes`);
    const dataOffset = await this.dataOffset(entry);
    const whole = start === 0 && stop === entry.size;
    const checkCrc = (crc: number) =>
      crc === entry.crc32 || this.bad(`entry ${name}: CRC-32 mismatch; the file is corrupt`);
    if (entry.method !== 0) {
      const bytes = await inflateRaw(
        await this.source.read(dataOffset, entry.compressedSize),
        entry.size,
        `${this.source.name}: entry ${name}`,
      );
      checkCrc(crc32(bytes));
      for (let at = start; at < stop || at === start; at += chunkBytes)
        yield bytes.subarray(at, Math.min(stop, at + chunkBytes));
      return;
    }
    let crc = 0;
    for (let at = start; at < stop || at === start; at += chunkBytes) {
      const bytes = await this.source.read(dataOffset + at, Math.min(stop, at + chunkBytes) - at);
      if (whole) crc = crc32(bytes, crc);
      if (whole && at + bytes.length === stop) checkCrc(crc);
      yield bytes;
    }
  }

  private async dataOffset(entry: ZipEntry): Promise<number> {
    const known = this.dataOffsets.get(entry.name);
    if (known !== undefined) return known;
    const header = await this.source.read(entry.localHeaderOffset, LOCAL_SIZE);
    const hv = view(header);
    if (hv.getUint32(0, true) !== SIG_LOCAL)
      this.bad(`entry ${entry.name}: bad local header signature at offset ${entry.localHeaderOffset}`);
    const offset = entry.localHeaderOffset + LOCAL_SIZE + hv.getUint16(26, true) + hv.getUint16(28, true);
    if (offset + entry.compressedSize > this.source.size)
      this.bad(`entry ${entry.name}: data extends past the end of the file; the file is truncated`);
    this.dataOffsets.set(entry.name, offset);
    return offset;
  }
}

function toSafe(v: bigint, file: string, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail('checkpoint', `${file}: ${what} ${v} is out of range`);
  return Number(v);
}

/**
 * Inflate raw DEFLATE data, refusing output beyond `expected` bytes. The output buffer is
 * allocated once the data has produced all of it: the declared size alone (up to 1032x the
 * compressed bytes) never decides how much memory a corrupt or hostile entry takes.
 */
async function inflateRaw(compressed: Uint8Array, expected: number, where: string): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  const stream = new Blob([compressed as Uint8Array<ArrayBuffer>])
    .stream()
    .pipeThrough(new DecompressionStream('deflate-raw'));
  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (n + value.length > expected) {
        await reader.cancel();
        fail('checkpoint', `${where}: inflates to more than its declared ${expected} bytes`);
      }
      chunks.push(value);
      n += value.length;
    }
  } catch (e) {
    if (e instanceof PgmError) throw e;
    throw new PgmError('checkpoint', `${where}: corrupt deflate data (${(e as Error).message})`, { cause: e });
  }
  if (n !== expected) fail('checkpoint', `${where}: inflated to ${n} bytes, expected ${expected}`);
  const out = new Uint8Array(expected);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
