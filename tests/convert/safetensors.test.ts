import { describe, expect, it } from 'vitest';
import { encodeFloats, floatToHalf, halfToFloat } from '../../src/weights/floats.js';
import {
  encodeHeader,
  memorySink,
  parseSafetensors,
  sha256Hex,
  writeSafetensors,
  type TensorSpec,
} from '../../src/weights/safetensors.js';
import { pgmError } from './helpers.js';
import { seededUniform as rng } from '../../src/reference/random.js';

const random = rng(3);
const specs: TensorSpec[] = [
  { name: 'a', dtype: 'F32', shape: [3, 5] },
  { name: 'b.weight', dtype: 'F16', shape: [7] },
  { name: 'c', dtype: 'BF16', shape: [2, 1, 3] },
  { name: 'empty', dtype: 'F32', shape: [0, 4] },
];
const values = specs.map((s) =>
  Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => random() * 8 - 4),
);

async function write(metadata: Record<string, string> = { k: 'v' }): Promise<Uint8Array> {
  const sink = memorySink();
  await writeSafetensors(sink, specs, async (i) => encodeFloats(values[i], specs[i].dtype), metadata);
  return sink.bytes();
}

/** A file with a hand-written header (padded to 8 bytes) and `data` bytes. */
function withHeader(header: string, data = new Uint8Array(0)): Uint8Array {
  const body = new TextEncoder().encode(header + ' '.repeat((8 - (header.length % 8)) % 8));
  const out = new Uint8Array(8 + body.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(body.length), true);
  out.set(body, 8);
  out.set(data, 8 + body.length);
  return out;
}

describe('safetensors', () => {
  it('round-trips F32 exactly and F16/BF16 within their precision; header is 8-byte aligned', async () => {
    const bytes = await write();
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const file = parseSafetensors(bytes, 'x.safetensors');
    expect(file.metadata).toEqual({ k: 'v' });
    expect([...file.tensors.keys()]).toEqual(['a', 'b.weight', 'c', 'empty']);
    expect(file.tensors.get('a')!.toFloat32()).toEqual(values[0]);
    expect(file.tensors.get('c')!.shape).toEqual([2, 1, 3]);
    file.tensors
      .get('b.weight')!
      .toFloat32()
      .forEach((v, i) => expect(Math.abs(v - values[1][i])).toBeLessThanOrEqual(4 * 2 ** -11));
    file.tensors
      .get('c')!
      .toFloat32()
      .forEach((v, i) => expect(Math.abs(v - values[2][i])).toBeLessThanOrEqual(4 * 2 ** -8));
    expect(file.tensors.get('empty')!.toFloat32().length).toBe(0);
  });

  it('converts float16 exactly at the edges (round to nearest even, subnormals, overflow)', () => {
    for (const v of [0, -0, 1, -2, 65504, 6.103515625e-5, 5.960464477539063e-8, 0.333251953125])
      expect(halfToFloat(floatToHalf(v))).toBe(v);
    expect(halfToFloat(floatToHalf(1e6))).toBe(Infinity);
    expect(halfToFloat(floatToHalf(-1e6))).toBe(-Infinity);
    expect(Number.isNaN(halfToFloat(floatToHalf(NaN)))).toBe(true);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie -> even
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalf(65520)).toBe(0x7c00); // rounds up past the largest half
    expect(floatToHalf(2 ** -25)).toBe(0); // tie at the smallest subnormal -> even (0)
    expect(floatToHalf(3 * 2 ** -26)).toBe(1);
  });

  it('the sink reports size and sha256', async () => {
    const sink = memorySink();
    await sink.write(new TextEncoder().encode('abc'));
    expect(await sink.close()).toEqual({
      size: 3,
      sha256: 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    });
    expect(await sha256Hex(new Uint8Array(0))).toBe('e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  });

  it('writer refuses data that does not match the declared shape', async () => {
    const e = await pgmError(() => writeSafetensors(memorySink(), [specs[0]], async () => new Uint8Array(4)));
    expect(e.message).toBe('tensor a: got 4 bytes, its shape and dtype need 60');
    async function* pieces(n: number, size: number) {
      for (let i = 0; i < n; i++) yield new Uint8Array(size);
    }
    expect((await pgmError(() => writeSafetensors(memorySink(), [specs[0]], () => pieces(7, 10)))).message).toBe(
      'tensor a: got more than the 60 bytes its shape and dtype need',
    );
    expect((await pgmError(() => writeSafetensors(memorySink(), [specs[0]], () => pieces(5, 10)))).message).toBe(
      'tensor a: got 50 bytes, its shape and dtype need 60',
    );
  });

  it('writes a tensor given in pieces as the same bytes as given whole', async () => {
    const whole = memorySink();
    await writeSafetensors(whole, specs, async (i) => encodeFloats(values[i], specs[i].dtype));
    const pieced = memorySink(1); // grows as it goes
    await writeSafetensors(pieced, specs, async function* (i) {
      const bytes = encodeFloats(values[i], specs[i].dtype);
      for (let at = 0; at < bytes.length; at += 6) yield bytes.subarray(at, at + 6);
    });
    expect(pieced.bytes()).toEqual(whole.bytes());
  });

  it('rejects bad headers with one-line messages naming the file', async () => {
    const good = await write();
    const { header } = encodeHeader(specs, { k: 'v' });
    const data = good.subarray(header.length);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(4), /^f\.safetensors: 4 bytes is too short/],
      [
        (() => {
          const b = good.slice();
          new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
          return b;
        })(),
        /header length 1099511627776 exceeds the file size/,
      ],
      [withHeader('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]'), /header is not valid JSON/],
      [withHeader('[1, 2]'), /header is not a JSON object/],
      [
        withHeader('{"a": {"dtype": "I64", "shape": [1], "data_offsets": [0, 8]}}', new Uint8Array(8)),
        /tensor a: unsupported dtype "I64"/,
      ],
      [
        withHeader('{"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}', new Uint8Array(4)),
        /tensor a: bad shape/,
      ],
      [
        withHeader('{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}', new Uint8Array(4)),
        /shape \[2\] x F32 needs 8 bytes, data_offsets span 4/,
      ],
      [
        withHeader(
          '{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
          new Uint8Array(8),
        ),
        /tensor b overlaps the previous tensor/,
      ],
      [
        withHeader('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}', new Uint8Array(8)),
        /gap before tensor a/,
      ],
      [
        withHeader('{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', new Uint8Array(8)),
        /tensor data ends at 4 but the file holds 8 data bytes/,
      ],
      [
        withHeader('{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}', new Uint8Array(8)),
        /run past the end of the data/,
      ],
      [withHeader('{"__metadata__": {"x": 1}}'), /__metadata__\.x is not a string/],
      [good.subarray(0, good.length - 1), /data_offsets .* run past the end|tensor data ends/],
    ];
    expect(data.length).toBeGreaterThan(0);
    for (const [bytes, re] of cases) {
      const e = await pgmError(() => parseSafetensors(bytes, 'f.safetensors'));
      expect(e.code).toBe('safetensors');
      expect(e.message).toMatch(re);
      expect(e.message).not.toContain('\n');
    }
  });
});
