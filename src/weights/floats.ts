/**
 * Float formats of model files: float32 <-> f16 (IEEE binary16, round to nearest even), bf16
 * and f64 (checkpoints), as little-endian bytes.
 */
/** The float formats a safetensors shard may hold. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
export const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };

/** Encode float32 values as little-endian bytes of `dtype` (f16: round to nearest even). */
export function encodeFloats(values: Float32Array, dtype: SafetensorsDtype): Uint8Array {
  if (dtype === 'F32') {
    const out = new Uint8Array(values.length * 4);
    new Float32Array(out.buffer).set(values);
    return out;
  }
  const out = new Uint16Array(values.length);
  if (dtype === 'F16') halvesInto(out, values);
  else {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) {
      const b = bits[i];
      out[i] = (b & 0x7fffffff) > 0x7f800000 ? 0x7fc0 : (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
  }
  return new Uint8Array(out.buffer);
}

/** float32 values -> IEEE binary16 bits in `out` (round to nearest even). */
export function halvesInto(out: Uint16Array, values: Float32Array): void {
  for (let i = 0; i < values.length; i++) out[i] = floatToHalf(values[i]);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
/** number -> IEEE binary16 bits, round to nearest even; overflow -> infinity. */
export function floatToHalf(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    let r = mant >>> shift;
    const rest = mant & ((1 << shift) - 1);
    if (rest > half || (rest === half && r & 1)) r++;
    return sign | r;
  }
  let r = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && r & 1)) {
    r++;
    if (r === 0x400) {
      r = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | r;
}

/** IEEE binary16 bits -> number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

let halfTable: Float32Array | undefined;

/** Every IEEE binary16 bit pattern's value (64K entries, built once): f16 decoding is one lookup per value. */
function halves(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** Decode F32/F16/BF16 (or F64, for checkpoints) bytes to float32; little-endian unless told otherwise. */
export function decodeFloats(bytes: Uint8Array, dtype: SafetensorsDtype | 'F64', littleEndian = true): Float32Array {
  const out = new Float32Array(bytes.length / (dtype === 'F64' ? 8 : DTYPE_BYTES[dtype]));
  decodeFloatsInto(out, bytes, dtype, littleEndian);
  return out;
}

/** decodeFloats into `out` (as many values as it holds, from the start of `bytes`). */
export function decodeFloatsInto(
  out: Float32Array,
  bytes: Uint8Array,
  dtype: SafetensorsDtype | 'F64',
  littleEndian = true,
): void {
  const n = out.length;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') {
    if (littleEndian && bytes.byteOffset % 4 === 0) out.set(new Float32Array(bytes.buffer, bytes.byteOffset, n));
    else for (let i = 0; i < n; i++) out[i] = dv.getFloat32(4 * i, littleEndian);
  } else if (dtype === 'F64') {
    for (let i = 0; i < n; i++) out[i] = dv.getFloat64(8 * i, littleEndian);
  } else if (dtype === 'F16') {
    const table = halves();
    if (littleEndian && bytes.byteOffset % 2 === 0) {
      const bits = new Uint16Array(bytes.buffer, bytes.byteOffset, n);
      for (let i = 0; i < n; i++) out[i] = table[bits[i]];
    } else for (let i = 0; i < n; i++) out[i] = table[dv.getUint16(2 * i, littleEndian)];
  } else {
    const bits = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i++) bits[i] = dv.getUint16(2 * i, littleEndian) << 16;
  }
}
