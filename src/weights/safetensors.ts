import { brief, fail } from '../errors.js';
import { decodeFloats, DTYPE_BYTES, type SafetensorsDtype } from './floats.js';

/**
 * safetensors files: 8-byte little-endian header length N, N bytes of JSON header
 * (`{"__metadata__": {...}, "<name>": {"dtype", "shape", "data_offsets": [begin, end]}}`,
 * padded with spaces to a multiple of 8), then the tensor bytes, little-endian.
 */

export interface SafetensorsTensor {
  dtype: SafetensorsDtype;
  shape: number[];
  /** Raw little-endian bytes (a view into the file). */
  bytes: Uint8Array;
  toFloat32(): Float32Array;
}

export interface SafetensorsFile {
  metadata: Record<string, string>;
  /** In file order. */
  tensors: Map<string, SafetensorsTensor>;
}

/** Where a writer puts one file; `close` reports what was written. */
export interface FileSink {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<{ size: number; sha256: string }>;
  /** Discard a file that will not be completed. */
  abort?(): Promise<void>;
}

export interface TensorSpec {
  name: string;
  dtype: SafetensorsDtype;
  shape: number[];
}

/** Largest header we accept: real headers are a few hundred KB at most. */
const MAX_HEADER = 100 * 1024 * 1024;
const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** The header bytes (length prefix included) for tensors stored back to back in `specs` order. */
export function encodeHeader(
  specs: readonly TensorSpec[],
  metadata: Record<string, string> = {},
): { header: Uint8Array; dataSize: number } {
  const json: Record<string, unknown> = {};
  if (Object.keys(metadata).length) json.__metadata__ = metadata;
  let offset = 0;
  for (const s of specs) {
    if (s.name === '__metadata__' || s.name in json)
      fail('safetensors', `duplicate or reserved tensor name ${JSON.stringify(s.name)}`);
    const end = offset + numel(s.shape) * DTYPE_BYTES[s.dtype];
    json[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [offset, end] };
    offset = end;
  }
  let text = JSON.stringify(json);
  text += ' '.repeat((8 - (new TextEncoder().encode(text).length % 8)) % 8);
  const body = new TextEncoder().encode(text);
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, dataSize: offset };
}

/** A tensor's bytes: all at once, or in pieces (a converter reading a large tensor piece by piece). */
export type TensorBytes = Promise<Uint8Array> | AsyncIterable<Uint8Array>;

/**
 * Stream a safetensors file into `sink`: the header first, then each tensor's bytes as
 * `data(i)` produces them, one tensor (or one piece of one) in memory at a time.
 */
export async function writeSafetensors(
  sink: FileSink,
  specs: readonly TensorSpec[],
  data: (index: number) => TensorBytes,
  metadata: Record<string, string> = {},
): Promise<{ size: number; sha256: string }> {
  try {
    const { header } = encodeHeader(specs, metadata);
    await sink.write(header);
    for (let i = 0; i < specs.length; i++) {
      const bytes = data(i);
      const want = numel(specs[i].shape) * DTYPE_BYTES[specs[i].dtype];
      let got = 0;
      for await (const piece of Symbol.asyncIterator in bytes ? bytes : [await bytes]) {
        got += piece.length;
        if (got > want) break;
        await sink.write(piece);
      }
      if (got > want)
        fail('safetensors', `tensor ${specs[i].name}: got more than the ${want} bytes its shape and dtype need`);
      if (got < want)
        fail('safetensors', `tensor ${specs[i].name}: got ${got} bytes, its shape and dtype need ${want}`);
    }
  } catch (e) {
    await sink.abort?.();
    throw e;
  }
  return sink.close();
}

/** Parse and validate a whole safetensors file held in memory. `file` names it in errors. */
export function parseSafetensors(bytes: Uint8Array, file: string): SafetensorsFile {
  const bad = (why: string): never => fail('safetensors', `${file}: ${why}`);
  if (bytes.length < 8) bad(`${bytes.length} bytes is too short for a safetensors file`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n64 = dv.getBigUint64(0, true);
  if (n64 > BigInt(Math.min(bytes.length - 8, MAX_HEADER)))
    bad(
      `header length ${n64} exceeds the file size (${bytes.length} bytes) or the ${MAX_HEADER}-byte limit; the file is truncated or not safetensors`,
    );
  const n = Number(n64);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    bad(`header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) bad('header is not a JSON object');
  const dataStart = 8 + n;
  const dataSize = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: { name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('__metadata__ is not an object');
      for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
        if (typeof v !== 'string') bad(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    const t = value as Record<string, unknown>;
    if (typeof t !== 'object' || t === null) bad(`tensor ${name}: entry is not an object`);
    const dtype = t.dtype as SafetensorsDtype;
    if (!(typeof dtype === 'string' && dtype in DTYPE_BYTES))
      bad(`tensor ${name}: unsupported dtype ${brief(t.dtype)} (expected F32, F16 or BF16)`);
    const shape = t.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      bad(`tensor ${name}: bad shape ${brief(shape)}`);
    const off = t.data_offsets;
    if (
      !Array.isArray(off) ||
      off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && d >= 0) ||
      off[0] > off[1]
    )
      bad(`tensor ${name}: bad data_offsets ${brief(off)}`);
    const [begin, end] = off as number[];
    if (end > dataSize)
      bad(
        `tensor ${name}: data_offsets [${begin}, ${end}] run past the end of the data (${dataSize} bytes); the file is truncated`,
      );
    const want = numel(shape as number[]) * DTYPE_BYTES[dtype];
    if (end - begin !== want)
      bad(
        `tensor ${name}: shape [${(shape as number[]).join(', ')}] x ${dtype} needs ${want} bytes, data_offsets span ${end - begin}`,
      );
    entries.push({ name, dtype, shape: shape as number[], begin, end });
  }
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let at = 0;
  for (const e of sorted) {
    if (e.begin !== at)
      bad(
        e.begin < at
          ? `tensor ${e.name} overlaps the previous tensor (data_offsets start at ${e.begin} < ${at})`
          : `gap before tensor ${e.name} (data_offsets start at ${e.begin}, previous tensor ends at ${at})`,
      );
    at = e.end;
  }
  if (at !== dataSize) bad(`tensor data ends at ${at} but the file holds ${dataSize} data bytes`);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const e of sorted) {
    const view = bytes.subarray(dataStart + e.begin, dataStart + e.end);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, bytes: view, toFloat32: () => decodeFloats(view, e.dtype) });
  }
  return { metadata, tensors };
}

/**
 * A sink that keeps the file in one buffer (tests, the model cache): `capacity`, the file's
 * size when known, is allocated once; beyond it the buffer doubles.
 */
export function memorySink(capacity = 0): FileSink & { bytes(): Uint8Array } {
  let buffer = new Uint8Array(capacity);
  let size = 0;
  return {
    async write(b) {
      if (size + b.length > buffer.length) {
        const grown = new Uint8Array(Math.max(2 * buffer.length, size + b.length));
        grown.set(buffer.subarray(0, size));
        buffer = grown;
      }
      buffer.set(b, size);
      size += b.length;
    },
    async close() {
      return { size, sha256: await sha256Hex(buffer.subarray(0, size)) };
    },
    bytes: () => buffer.subarray(0, size),
  };
}

/** Hex SHA-256 via WebCrypto (Node 20 and browsers). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}
