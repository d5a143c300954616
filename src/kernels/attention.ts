import { byRowCount, type Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { DEFAULT_PLAN, everyBucket, ROW_BUCKETS, type AttentionVariant } from './plan.js';
import {
  activationShape,
  batchBindings,
  ceilDiv,
  paramsBuffer,
  rowsOf,
  type Rows,
  type Workspace,
} from './workspace.js';

const threadShader = shader('attention.wgsl');
const flashShader = shader('attention_flash.wgsl');

/** Keys per workgroup-memory tile: K and V tiles together stay within 16 KiB, the WebGPU default limit. */
export const keyTile = (headDim: number): number => Math.max(1, Math.min(32, Math.floor(2048 / headDim)));

export interface AttentionArgs {
  label: string;
  /** Whose rows ask: clean tokens (self-attention) or queries (cross-attention). */
  queries: Rows;
  /** Each [batch, L, nHeads * headDim], usually column views of packed projections. */
  q: GpuTensor;
  k: GpuTensor;
  v: GpuTensor;
  out: GpuTensor; // [batch, L, nHeads * headDim], dense
  nHeads: number;
  headDim: number;
  /** Run this variant at every query count instead of `ws.plan` (tests, benches, tuning). */
  variant?: AttentionVariant;
}

/**
 * softmax(q k^T / sqrt(dh)) v per head over each sequence's clean keys, by the plan's variant
 * for the query-count bucket at encode time.
 */
export async function attentionDispatch(ws: Workspace, a: AttentionArgs): Promise<Dispatch> {
  const op = `attention ${a.label}`;
  const shape = activationShape(ws, a.nHeads * a.headDim);
  for (const [role, t] of [
    ['q', a.q],
    ['k', a.k],
    ['v', a.v],
  ] as const)
    expectTensor(op, role, t, { shape });
  expectTensor(op, 'out', a.out, { shape, dense: true });
  const variants = a.variant ? everyBucket(a.variant) : (ws.plan ?? DEFAULT_PLAN).attention;
  const params = {
    qStride: a.q.rowStride,
    qOffset: a.q.offset,
    kStride: a.k.rowStride,
    kOffset: a.k.offset,
    vStride: a.v.rowStride,
    vOffset: a.v.offset,
    nHeads: a.nHeads,
    queryKind: a.queries,
    scale: 1 / Math.sqrt(a.headDim),
  };
  // One uniform for every variant: they share attention_io.wgsl's Params.
  let p: GPUBuffer | undefined;
  const prepare = async (variant: AttentionVariant): Promise<Dispatch> => {
    const flash = variant === 'flash';
    const kernel = await ws.kernels.get({
      shader: flash ? flashShader : threadShader,
      defines: flash ? { HEAD_DIM: a.headDim, KEY_TILE: keyTile(a.headDim) } : { HEAD_DIM: a.headDim },
    });
    p ??= paramsBuffer(ws, kernel, a.label, params);
    const bindGroup = kernel.bind(a.label, {
      ...batchBindings(ws),
      p,
      q: a.q.buffer,
      k: a.k.buffer,
      v: a.v.buffer,
      out: a.out.buffer,
    });
    // flash: a workgroup per QUERY_TILE rows of a head; thread: a thread per THREAD_ROWS rows of a head.
    const rowsPer = kernel.constant(flash ? 'QUERY_TILE' : 'THREAD_ROWS');
    const [group] = kernel.workgroupSize;
    const grid = (): [number, number, number] =>
      flash
        ? [ceilDiv(rowsOf(ws, a.queries), rowsPer), a.nHeads, ws.shape.batch]
        : [ceilDiv(ceilDiv(rowsOf(ws, a.queries), rowsPer) * a.nHeads, group), ws.shape.batch, 1];
    return { kernel, bindGroup, grid };
  };
  const built = new Map<AttentionVariant, Promise<Dispatch>>();
  const dispatch = (v: AttentionVariant) => built.get(v) ?? built.set(v, prepare(v)).get(v)!;
  return byRowCount(
    () => rowsOf(ws, a.queries),
    await Promise.all(variants.map(async (v, i) => [ROW_BUCKETS[i], await dispatch(v)] as const)),
  );
}
