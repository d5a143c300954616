import { shader } from '../gpu/shader.js';
import type { Dispatch } from '../gpu/kernel.js';
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
  positions: GPUBuffer;
  tables: RopeTables;
  x: GPUBuffer;
  /** Floats per row of x, and where the rotated heads start in it. */
  rowStride: number;
  colOffset: number;
  nHeads: number;
  headDim: number;
}

/** Rotate nHeads heads of each valid row of x in place, at the row's sequence position. */
export async function ropeDispatch(ws: Workspace, a: RopeArgs): Promise<Dispatch> {
  const kernel = await ws.kernels.get({ shader: source, bindings: ['uniform', 'read', 'uniform', 'read', 'read', 'read', 'write'] });
  const half = a.headDim / 2;
  const params = paramsBuffer(ws, a.label, [a.rowStride, a.colOffset, a.nHeads, half, a.rows]);
  return {
    kernel,
    bindGroup: kernel.bind(a.label, [ws.dims, ws.lengths, params, a.positions, a.tables.cos, a.tables.sin, a.x]),
    grid: () => [ceilDiv(a.nHeads * half, 64), rowsOf(ws, a.rows), ws.shape.batch],
  };
}
