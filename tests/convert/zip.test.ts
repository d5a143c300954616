import { describe, expect, it } from 'vitest';
import { Checkpoint } from '../../src/convert/checkpoint.js';
import { blobSource, bytesSource } from '../../src/convert/source.js';
import { ZipArchive } from '../../src/convert/zip.js';
import { PgmError } from '../../src/errors.js';
import { makeZip, pgmError } from './helpers.js';
import { seededUniform as rng } from '../../src/reference/random.js';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const entries = [
  { name: 'archive/data.pkl', data: text('pickle bytes') },
  { name: 'archive/data/0', data: Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff) },
  { name: 'archive/version', data: text('3\n') },
];

describe('ZipArchive', () => {
  it('lists entries and reads whole entries and byte ranges', async () => {
    const zip = await ZipArchive.open(bytesSource(makeZip(entries, { comment: 'a comment' }), 'a.ckpt'));
    expect(zip.entries.map((e) => e.name)).toEqual(entries.map((e) => e.name));
    expect(await zip.read('archive/data.pkl')).toEqual(entries[0].data);
    expect(await zip.read('archive/data/0', 10, 20)).toEqual(entries[1].data.subarray(10, 20));
    expect((await pgmError(() => zip.read('archive/data/0', 900, 1001))).message).toMatch(
      /range \[900, 1001\) is outside its 1000 bytes/,
    );
    expect((await pgmError(() => zip.read('nope'))).message).toMatch(/missing entry "nope"/);
  });

  it('reads ZIP64 archives (end records and extra fields)', async () => {
    const zip = await ZipArchive.open(bytesSource(makeZip(entries, { zip64: true }), 'z64.ckpt'));
    expect(zip.get('archive/data/0')?.size).toBe(1000);
    expect(await zip.read('archive/data/0')).toEqual(entries[1].data);
  });

  it('inflates DEFLATE entries (and ranges of them)', async () => {
    const zip = await ZipArchive.open(bytesSource(makeZip(entries.map((e) => ({ ...e, deflate: true }))), 'd.ckpt'));
    expect(zip.get('archive/data/0')?.method).toBe(8);
    expect(await zip.read('archive/data/0')).toEqual(entries[1].data);
    expect(await zip.read('archive/data/0', 5, 8)).toEqual(entries[1].data.subarray(5, 8));
  });

  it('reads through a Blob source (the browser path)', async () => {
    const bytes = makeZip(entries);
    const zip = await ZipArchive.open(blobSource(new Blob([bytes as Uint8Array<ArrayBuffer>]), 'blob.ckpt'));
    expect(await zip.read('archive/version')).toEqual(text('3\n'));
  });

  it('detects corrupted entry data by CRC', async () => {
    const bytes = makeZip(entries);
    const at = bytes.indexOf(0x63, 40); // inside the first entry's data ("pickle bytes")
    bytes[at] ^= 1;
    const zip = await ZipArchive.open(bytesSource(bytes, 'crc.ckpt'));
    expect((await pgmError(() => zip.read('archive/data.pkl'))).message).toBe(
      'crc.ckpt: entry archive/data.pkl: CRC-32 mismatch; the file is corrupt',
    );
  });

  it('reads an entry in pieces: stored ones range by range, their CRC over the pieces; deflated ones inflated once', async () => {
    for (const deflate of [false, true]) {
      const bytes = makeZip(entries.map((e) => ({ ...e, deflate })));
      const reads: number[] = [];
      const source = bytesSource(bytes, 'pieces.ckpt');
      const zip = await ZipArchive.open({
        ...source,
        read: (offset, length) => (reads.push(length), source.read(offset, length)),
      });
      reads.length = 0;
      const pieces = [];
      for await (const piece of zip.chunks('archive/data/0', 0, undefined, 64)) pieces.push(piece);
      expect(pieces.map((p) => p.length)).toEqual([...Array(15).fill(64), 40]);
      expect(new Uint8Array(pieces.flatMap((p) => [...p]))).toEqual(entries[1].data);
      if (!deflate) expect(Math.max(...reads)).toBe(64);
      const range = [];
      for await (const piece of zip.chunks('archive/data/0', 100, 300, 64)) range.push(...piece);
      expect(new Uint8Array(range)).toEqual(entries[1].data.subarray(100, 300));
    }
    const bytes = makeZip(entries);
    const dataStart = 30 + entries[0].name.length + entries[0].data.length + 30 + entries[1].name.length; // makeZip: local headers without extra fields
    bytes[dataStart + 510] ^= 1;
    const zip = await ZipArchive.open(bytesSource(bytes, 'crc.ckpt'));
    const read = async () => {
      for await (const piece of zip.chunks('archive/data/0', 0, undefined, 64)) expect(piece.length).toBeGreaterThan(0);
    };
    expect((await pgmError(read)).message).toBe('crc.ckpt: entry archive/data/0: CRC-32 mismatch; the file is corrupt');
  });

  it('rejects non-zip and truncated files with typed errors', async () => {
    expect((await pgmError(() => ZipArchive.open(bytesSource(new Uint8Array(10), 'tiny.ckpt')))).message).toMatch(
      /^tiny\.ckpt: not a zip archive/,
    );
    expect((await pgmError(() => ZipArchive.open(bytesSource(new Uint8Array(5000), 'zeros.ckpt')))).message).toMatch(
      /no end-of-central-directory record/,
    );
    const bytes = makeZip(entries, { zip64: true });
    for (let n = 0; n < bytes.length; n += 13) {
      const e = await pgmError(async () => {
        const zip = await ZipArchive.open(bytesSource(bytes.subarray(0, n), 'cut.ckpt'));
        for (const entry of zip.entries) await zip.read(entry.name);
      });
      expect(e.code).toBe('checkpoint');
    }
  });

  it('fuzz: random corruption ends in the stored bytes or a typed error, and reaches every part of the archive', async () => {
    const base = makeZip(entries);
    const random = rng(1);
    const errors: string[] = [];
    for (let i = 0; i < 300; i++) {
      const bytes = base.slice();
      for (let k = 0; k < 3; k++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      try {
        const zip = await ZipArchive.open(bytesSource(bytes, 'fuzz.ckpt'));
        // Whatever the reader returns is what was stored: damage never comes out as data.
        for (const [j, entry] of zip.entries.entries())
          expect(await zip.read(entry.name), `case ${i}: ${entry.name}`).toEqual(entries[j].data);
      } catch (e) {
        if (!(e instanceof PgmError)) throw e;
        expect(e.code).toBe('checkpoint');
        errors.push(e.message);
      }
    }
    // The damage is caught by the checks of each part: the data's CRC, the local headers, the central directory, the end record.
    for (const check of [
      'CRC-32 mismatch',
      'bad local header signature',
      'bad central directory record',
      'no end-of-central-directory record',
    ]) {
      expect(
        errors.some((m) => m.includes(check)),
        check,
      ).toBe(true);
    }
  });
});

describe('Checkpoint.open', () => {
  it('names a missing data.pkl', async () => {
    const e = await pgmError(() =>
      Checkpoint.open(bytesSource(makeZip([{ name: 'x/version', data: text('3') }]), 'empty.ckpt')),
    );
    expect(e.message).toBe('empty.ckpt: no <prefix>/data.pkl entry; not a torch.save checkpoint');
  });
});
