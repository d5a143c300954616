import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { batchBindings, ceilDiv, paramsBuffer, rowsOf, Rows, type Workspace } from './workspace.js';

const source = shader('rows.wgsl');
/** rows.wgsl's `count` for the joined rows only (common.wgsl's JOINED). */
const JOINED = 3;

export interface AppendFreshRowsArgs {
  label: string;
  /** [batch, L, width]: the fresh rows, packed at rows 0..m_b-1; views allowed. */
  from: GpuTensor;
  /**
   * [batch, L, width]: a buffer of the clean set, each fresh row written at its row there (the
   * joined ones at the tail, rows n_b - j_b..n_b-1; a re-encoded one over its own); views allowed.
   */
  to: GpuTensor;
  /** Only the joined rows: the first block's keys and values, which a re-encoded row keeps. */
  joinedOnly?: boolean;
}

/** Append each sequence's fresh rows to a clean-set buffer (rows.wgsl). */
export async function appendFreshRowsDispatch(ws: Workspace, a: AppendFreshRowsArgs): Promise<Dispatch> {
  const op = `rows ${a.label}`;
  const width = cols(a.from);
  for (const [role, t] of [
    ['from', a.from],
    ['to', a.to],
  ] as const)
    expectTensor(op, role, t, { shape: [ws.maxBatch, ws.seqStride, width] });
  const kernel = await ws.kernels.get({ shader: source });
  const p = paramsBuffer(ws, kernel, a.label, {
    width,
    srcStride: a.from.rowStride,
    srcOffset: a.from.offset,
    dstStride: a.to.rowStride,
    dstOffset: a.to.offset,
    count: a.joinedOnly ? JOINED : Rows.Fresh,
  });
  return {
    kernel,
    bindGroup: kernel.bind(a.label, { ...batchBindings(ws), p, src: a.from.buffer, dst: a.to.buffer }),
    grid: () => [ceilDiv(width, kernel.workgroupSize[0]), rowsOf(ws, Rows.Fresh), ws.shape.batch],
  };
}
