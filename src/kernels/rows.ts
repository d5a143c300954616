import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { ceilDiv, paramsBuffer, rowsOf, Rows, type Workspace } from './workspace.js';

const source = shader('rows.wgsl');

export interface AppendFreshRowsArgs {
  label: string;
  /** [batch, L, width]: the fresh rows, packed at rows 0..m_b-1; views allowed. */
  from: GpuTensor;
  /** [batch, L, width]: a buffer of the clean set, its rows n_b - m_b..n_b-1 written; views allowed. */
  to: GpuTensor;
}

/** Append each sequence's fresh rows to the tail of a clean-set buffer (rows.wgsl). */
export async function appendFreshRowsDispatch(ws: Workspace, a: AppendFreshRowsArgs): Promise<Dispatch> {
  const op = `rows ${a.label}`;
  const width = cols(a.from);
  for (const [role, t] of [['from', a.from], ['to', a.to]] as const) expectTensor(op, role, t, { shape: [ws.maxBatch, ws.seqStride, width] });
  const kernel = await ws.kernels.get({ shader: source });
  const params = paramsBuffer(ws, a.label, [width, a.from.rowStride, a.from.offset, a.to.rowStride, a.to.offset]);
  return {
    kernel,
    bindGroup: kernel.bind(a.label, [ws.dims, ws.lengths, params, a.from.buffer, a.to.buffer]),
    grid: () => [ceilDiv(width, 64), rowsOf(ws, Rows.Fresh), ws.shape.batch],
  };
}
