import { fail } from '../errors.js';
import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { ceilDiv, paramsBuffer, rowsOf, Rows, type Workspace } from './workspace.js';

const source = shader('rows.wgsl');
/** rows.wgsl's `count`: every fresh row, or only the joined ones (common.wgsl's JOINED). */
const JOINED = 3;

export interface FreshRowsArgs {
  label: string;
  /**
   * gather: each sequence's fresh rows of `from` (the clean set's last j_b rows, then the rows
   * `reencoded` lists) to rows 0..m_b-1 of `to`; append: the reverse.
   */
  direction: 'gather' | 'append';
  /** [batch, L, width] (or u32 [batch, L]), views allowed. */
  from: GpuTensor;
  to: GpuTensor;
  /** u32 [batch, L]: the kept rows the adaptive policy re-encodes (absent: none). */
  reencoded?: GpuTensor;
  /** Move only the joined rows (the first block's keys and values of re-encoded rows stay). */
  joinedOnly?: boolean;
}

/** Copy each sequence's fresh rows between the clean set and a packed buffer (rows.wgsl). */
export async function freshRowsDispatch(ws: Workspace, a: FreshRowsArgs): Promise<Dispatch> {
  const op = `rows ${a.label}`;
  const width = a.from.shape.length === 2 ? 1 : cols(a.from);
  const shape = a.from.shape.length === 2 ? [ws.maxBatch, ws.seqStride] : [ws.maxBatch, ws.seqStride, width];
  for (const [role, t] of [['from', a.from], ['to', a.to]] as const) expectTensor(op, role, t, { shape, dtype: ['f32', 'u32'], dense: shape.length === 2 });
  if (a.reencoded) expectTensor(op, 'reencoded', a.reencoded, { shape: [ws.maxBatch, ws.seqStride], dtype: 'u32', dense: true });
  if (a.from.dtype !== a.to.dtype) fail('shape', `${op}: from is ${a.from.dtype}, to is ${a.to.dtype}`);
  // An index tensor [batch, L] has one word a row.
  const stride = (t: GpuTensor) => (t.shape.length === 2 ? 1 : t.rowStride);
  const kernel = await ws.kernels.get({ shader: source });
  const params = paramsBuffer(ws, a.label, [width, stride(a.from), a.from.offset, stride(a.to), a.to.offset, a.direction === 'append' ? 1 : 0, a.joinedOnly ? JOINED : Rows.Fresh]);
  return {
    kernel,
    bindGroup: kernel.bind(a.label, [ws.dims, ws.lengths, params, a.from.buffer, a.to.buffer, a.reencoded?.buffer ?? ws.unused]),
    grid: () => [ceilDiv(width, 64), rowsOf(ws, Rows.Fresh), ws.shape.batch],
  };
}
