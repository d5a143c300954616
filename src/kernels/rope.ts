import { fail } from '../errors.js';
import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { ceilDiv, paramsBuffer, rowsOf, type Rows, type Workspace } from './workspace.js';

const source = shader('rope.wgsl');

export interface RopeTables {
  cos: GPUBuffer; // [L, dh/2]
  sin: GPUBuffer; // [L, dh/2]
}

/**
 * cos/sin of p * inv_freq for p < L, inv_freq[i] = 1 / 10000^(2i/dh), rounded like
 * PyTorch's float32 computation (inv_freq and the product in float32).
 */
export function ropeTables(L: number, headDim: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(L * half);
  const sin = new Float32Array(L * half);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.fround(1 / Math.fround(10000 ** Math.fround((2 * i) / headDim)));
    for (let p = 0; p < L; p++) {
      const angle = Math.fround(p * invFreq);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

export interface RopeArgs {
  label: string;
  rows: Rows;
  positions: GpuTensor; // u32 [batch, L]
  tables: RopeTables;
  /** [batch, L, nHeads * headDim], usually a column view of a packed projection. */
  x: GpuTensor;
  nHeads: number;
  headDim: number;
}

/** Rotate nHeads heads of each valid row of x in place, at the row's sequence position. */
export async function ropeDispatch(ws: Workspace, a: RopeArgs): Promise<Dispatch> {
  const op = `rope ${a.label}`;
  expectTensor(op, 'positions', a.positions, { shape: [ws.maxBatch, ws.seqStride], dtype: 'u32', dense: true });
  expectTensor(op, 'x', a.x, { shape: [ws.maxBatch, ws.seqStride, a.nHeads * a.headDim] });
  if (a.headDim % 2 !== 0) fail('shape', `${op}: head size ${a.headDim} is odd; rotary needs pairs`);
  const kernel = await ws.kernels.get({ shader: source });
  const half = a.headDim / 2;
  const params = paramsBuffer(ws, a.label, [a.x.rowStride, a.x.offset, a.nHeads, half, a.rows]);
  return {
    kernel,
    bindGroup: kernel.bind(a.label, [ws.dims, ws.lengths, params, a.positions.buffer, a.tables.cos, a.tables.sin, a.x.buffer]),
    grid: () => [ceilDiv(a.nHeads * half, 64), rowsOf(ws, a.rows), ws.shape.batch],
  };
}
