import type { Dispatch } from '../gpu/kernel.js';
import { ceilDiv, paramsBuffer, rowsOf, type Rows, type Workspace } from './workspace.js';

const url = new URL('../../shaders/attention.wgsl', import.meta.url);

/** A [rows, stride] buffer whose heads start at float column `offset`. */
export interface HeadSlice {
  buffer: GPUBuffer;
  stride: number;
  offset: number;
}

export interface AttentionArgs {
  label: string;
  /** Whose rows ask: clean tokens (self-attention) or queries (cross-attention). */
  queries: Rows;
  q: HeadSlice;
  k: HeadSlice;
  v: HeadSlice;
  out: GPUBuffer; // [batch, L, nHeads * headDim]
  nHeads: number;
  headDim: number;
}

/** softmax(q k^T / sqrt(dh)) v per head over each sequence's clean keys. */
export async function attentionDispatch(ws: Workspace, a: AttentionArgs): Promise<Dispatch> {
  const kernel = await ws.kernels.get({
    url,
    bindings: ['uniform', 'read', 'uniform', 'read', 'read', 'read', 'write'],
    defines: { HEAD_DIM: a.headDim },
  });
  const params = paramsBuffer(
    ws,
    a.label,
    [a.q.stride, a.q.offset, a.k.stride, a.k.offset, a.v.stride, a.v.offset, a.nHeads, a.queries],
    [1 / Math.sqrt(a.headDim)],
  );
  return {
    kernel,
    bindGroup: kernel.bind(a.label, [ws.dims, ws.lengths, params, a.q.buffer, a.k.buffer, a.v.buffer, a.out]),
    grid: () => [ceilDiv(rowsOf(ws, a.queries) * a.nHeads, 64), ws.shape.batch, 1],
  };
}
