import { fail } from '../errors.js';
import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { activationShape, batchBindings, ceilDiv, paramsBuffer, type Workspace } from './workspace.js';

const stalenessShader = shader('staleness.wgsl');
const reencodeShader = shader('reencode.wgsl');

/** The adaptive KV set's per-row state on the GPU (model/kv-set.ts). */
export interface StalenessState {
  /** [batch, L, 2 * heads]: per head, the log-sum-exp of the row's first-block scores over every key and over the keys it saw. */
  lse: GpuTensor;
  /** [batch, L, 1]: each kept row's unseen share (the pick's scratch). */
  unseen: GpuTensor;
  /** u32 [maxBatch]: rows re-encoded per sequence, for the step's readback. */
  report: GPUBuffer;
  /** Uniform, 16 bytes: the pick's threshold (f32), then padding. */
  threshold: GPUBuffer;
}

export interface StalenessArgs {
  state: StalenessState;
  /** The first block's rotated queries and keys of every clean row, [batch, L, heads * headDim] views. */
  queries: GpuTensor;
  keys: GpuTensor;
  nHeads: number;
  headDim: number;
}

const checkState = (ws: Workspace, op: string, s: StalenessState, nHeads: number): void => {
  expectTensor(op, 'lse', s.lse, { shape: activationShape(ws, 2 * nHeads), dense: true });
  expectTensor(op, 'unseen', s.unseen, { shape: activationShape(ws, 1), dense: true });
};

/** Take this pass's joined keys into every clean row's log-sum-exps (staleness.wgsl), after the first block appended them. */
export async function stalenessDispatch(ws: Workspace, a: StalenessArgs): Promise<Dispatch> {
  const op = 'staleness';
  checkState(ws, op, a.state, a.nHeads);
  const shape = activationShape(ws, a.nHeads * a.headDim);
  expectTensor(op, 'queries', a.queries, { shape });
  expectTensor(op, 'keys', a.keys, { shape });
  const kernel = await ws.kernels.get({ shader: stalenessShader, defines: { HEAD_DIM: a.headDim } });
  const p = paramsBuffer(ws, kernel, op, {
    heads: a.nHeads,
    qStride: a.queries.rowStride,
    qOffset: a.queries.offset,
    kStride: a.keys.rowStride,
    kOffset: a.keys.offset,
    scale: 1 / Math.sqrt(a.headDim),
  });
  return {
    kernel,
    bindGroup: kernel.bind(op, {
      ...batchBindings(ws),
      p,
      queries: a.queries.buffer,
      keys: a.keys.buffer,
      lse: a.state.lse.buffer,
    }),
    grid: () => [ceilDiv(ws.shape.maxClean * a.nHeads, kernel.workgroupSize[0]), ws.shape.batch, 1],
  };
}

/**
 * The adaptive policy's pick (reencode.wgsl): the kept rows whose unseen share exceeds the
 * threshold (`state.threshold`'s first float), stalest first, at most `perFresh` per joined row,
 * listed in `lengths` with the fresh counts they add to.
 */
export async function reencodeDispatch(
  ws: Workspace,
  state: StalenessState,
  nHeads: number,
  perFresh: number,
): Promise<Dispatch> {
  const op = 'reencode';
  checkState(ws, op, state, nHeads);
  if (state.report.size < 4 * ws.maxBatch)
    fail('shape', `${op}: report holds ${state.report.size} bytes, ${4 * ws.maxBatch} needed`);
  const kernel = await ws.kernels.get({ shader: reencodeShader, defines: { WRITE_LENGTHS: true } });
  const p = paramsBuffer(ws, kernel, op, { perFresh, heads: nHeads });
  return {
    kernel,
    bindGroup: kernel.bind(op, {
      ...batchBindings(ws),
      p,
      lse: state.lse.buffer,
      unseen: state.unseen.buffer,
      report: state.report,
      threshold: state.threshold,
    }),
    grid: () => [ws.shape.batch, 1, 1],
  };
}
