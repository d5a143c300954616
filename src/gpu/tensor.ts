import { fail } from '../errors.js';

/** Element types of GPU tensors: f16 elements sit two per u32 word, the kernels widen them on load. */
export type GpuDtype = 'f32' | 'f16' | 'u32';

const BYTES: Record<GpuDtype, number> = { f32: 4, f16: 2, u32: 4 };

/**
 * A GPU buffer seen as a tensor: its shape (the last dimension is the columns of a row), how
 * many elements apart its rows are (`rowStride`, at least the columns) and at which column of
 * each row it starts (`offset`), so that the q, k and v heads of one packed projection are
 * three views of one buffer. Kernel wrappers take views and check them when an op is built: a
 * wrong shape fails there, naming both shapes, not three kernels later as wrong numbers.
 */
export interface GpuTensor {
  readonly name: string;
  readonly buffer: GPUBuffer;
  readonly shape: readonly number[];
  readonly rowStride: number;
  readonly offset: number;
  readonly dtype: GpuDtype;
}

const format = (shape: readonly (number | undefined)[]): string => `[${shape.map((d) => d ?? '*').join(', ')}]`;
const count = (shape: readonly number[]): number => shape.reduce((a, d) => a * d, 1);

/** Columns: the last dimension. */
export const cols = (t: GpuTensor): number => t.shape[t.shape.length - 1];

/** A dense view of `buffer` as `shape`; the buffer must hold it. */
export function gpuTensor(
  name: string,
  buffer: GPUBuffer,
  shape: readonly number[],
  dtype: GpuDtype = 'f32',
): GpuTensor {
  const bytes = Math.ceil((count(shape) * BYTES[dtype]) / 4) * 4;
  if (bytes > buffer.size)
    fail('shape', `tensor ${name} ${format(shape)} ${dtype} needs ${bytes} bytes, its buffer has ${buffer.size}`);
  return { name, buffer, shape, rowStride: shape[shape.length - 1], offset: 0, dtype };
}

/** The same buffer, dense, seen as another shape (a wider or narrower use of a shared activation). */
export const reshape = (t: GpuTensor, shape: readonly number[], name = t.name): GpuTensor =>
  gpuTensor(name, t.buffer, shape, t.dtype);

/** Columns [offset, offset + width) of every row of `t`: a strided view. */
export function columns(
  t: GpuTensor,
  offset: number,
  width: number,
  name = `${t.name}[${offset}:${offset + width}]`,
): GpuTensor {
  if (offset < 0 || width < 1 || offset + width > cols(t))
    fail('shape', `tensor ${t.name} ${format(t.shape)}: columns ${offset}..${offset + width - 1} are out of range`);
  return { ...t, name, shape: [...t.shape.slice(0, -1), width], offset: t.offset + offset };
}

export interface Expected {
  /** Wanted dimensions; undefined: any. */
  shape: readonly (number | undefined)[];
  dtype?: GpuDtype | readonly GpuDtype[];
  /** Rows must be contiguous (rowStride = columns, offset 0): kernels that index rows by their width. */
  dense?: boolean;
}

/** Check one argument of an op; the message names the op, the role, and both shapes. */
export function expectTensor(op: string, role: string, t: GpuTensor, want: Expected): void {
  const what = `${op}: ${role} ${t.name}`;
  const ok = t.shape.length === want.shape.length && want.shape.every((d, i) => d === undefined || d === t.shape[i]);
  if (!ok) fail('shape', `${what} is ${format(t.shape)}, expected ${format(want.shape)}`);
  const dtypes = want.dtype === undefined ? ['f32'] : typeof want.dtype === 'string' ? [want.dtype] : want.dtype;
  if (!dtypes.includes(t.dtype)) fail('shape', `${what} is ${t.dtype}, expected ${dtypes.join(' or ')}`);
  if (want.dense && (t.rowStride !== cols(t) || t.offset !== 0))
    fail(
      'shape',
      `${what} is a strided view (row stride ${t.rowStride}, offset ${t.offset}); this op needs dense rows`,
    );
}
