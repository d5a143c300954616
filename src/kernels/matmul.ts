import type { Dispatch } from '../gpu/kernel.js';
import { ceilDiv, paramsBuffer, rowsOf, type Rows, type Workspace } from './workspace.js';

const url = new URL('../../shaders/matmul.wgsl', import.meta.url);
const TILE = 32;

export interface MatmulArgs {
  label: string;
  rows: Rows;
  /** x: [batch, L, K]; weight: [N, K]; out: [batch, L, N] (or [batch, maxRows, N] when `denseOut`). */
  x: GPUBuffer;
  weight: GPUBuffer;
  out: GPUBuffer;
  K: number;
  N: number;
  bias?: GPUBuffer;
  activation?: 'gelu' | 'silu';
  /** out += gate * result, with the gate at this float offset of `modulation`. */
  gatedResidual?: { modulation: GPUBuffer; gateOffset: number };
  /** Pack output rows densely per sequence by the current max row count (for logits). */
  denseOut?: boolean;
}

/** out = epilogue(x @ weight^T), only over each sequence's valid rows. */
export async function matmulDispatch(ws: Workspace, a: MatmulArgs): Promise<Dispatch> {
  const kernel = await ws.kernels.get({
    url,
    bindings: ['uniform', 'read', 'uniform', 'read', 'read', 'write', 'read', 'read'],
    defines: {
      VEC4: a.K % 4 === 0,
      BIAS: a.bias !== undefined,
      GELU: a.activation === 'gelu',
      SILU: a.activation === 'silu',
      GATED_RESIDUAL: a.gatedResidual !== undefined,
    },
  });
  const params = paramsBuffer(ws, a.label, [a.K, a.N, a.rows, a.denseOut ? 1 : 0, a.gatedResidual?.gateOffset ?? 0]);
  const bindGroup = kernel.bind(a.label, [ws.dims, ws.lengths, params, a.x, a.weight, a.out, a.bias ?? ws.unused, a.gatedResidual?.modulation ?? ws.unused]);
  return { kernel, bindGroup, grid: () => [ceilDiv(a.N, TILE), ceilDiv(rowsOf(ws, a.rows), TILE), ws.shape.batch] };
}
