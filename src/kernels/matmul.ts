import { fail } from '../errors.js';
import { byRowCount, type Dispatch } from '../gpu/kernel.js';
import { shader, type Defines, type ShaderSource } from '../gpu/shader.js';
import { expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { bucketRange, DEFAULT_PLAN, everyBucket, matmulBuckets, type MatmulVariant } from './plan.js';
import { activationShape, ceilDiv, paramsBuffer, rowsOf, type Rows, type Workspace } from './workspace.js';

/** Shader file, extra defines and the block of [rows, columns] one workgroup covers. */
interface Layout {
  shader: ShaderSource;
  defines: Defines;
  block: [number, number];
}

/** A layout, or one chosen for the weight's N on this device. */
type LayoutFor = Layout | ((N: number, device: GPUDevice) => Layout);

const wideRows = (TM: number): Layout => ({ shader: shader('matmul.wgsl'), defines: { WG_X: 64, WG_Y: 1, TM }, block: [TM, 256] });

/**
 * `broadcast` with TM rows: 8 to 64 threads of 4 columns each, at least two column blocks where
 * N allows (few rows still make work for two CPU threads, no block is mostly idle lanes);
 * 8-lane groups where no subgroup of the device is smaller.
 */
const broadcastRows = (TM: number) => (N: number, device: GPUDevice): Layout => {
  const WG = Math.min(64, Math.max(8, 2 ** Math.ceil(Math.log2(Math.ceil(N / 8)))));
  const SG8 = (device.adapterInfo?.subgroupMinSize ?? 4) >= 8;
  return { shader: shader('matmul_broadcast.wgsl'), defines: { TM, WG, SG8, XSCALAR: true }, block: [TM, 4 * WG] };
};

/** Each variant's layouts by the most rows they serve (the last one: any count). */
const layouts: Record<MatmulVariant, [number, LayoutFor][]> = {
  register: [[Infinity, { shader: shader('matmul.wgsl'), defines: { WG_X: 8, WG_Y: 8, TM: 4 }, block: [32, 32] }]],
  wide: [[4, wideRows(4)], [8, wideRows(8)], [Infinity, wideRows(16)]],
  tall: [[Infinity, { shader: shader('matmul.wgsl'), defines: { WG_X: 8, WG_Y: 4, TM: 16, COLS8: true }, block: [64, 64] }]],
  tiled: [[Infinity, { shader: shader('matmul_tiled.wgsl'), defines: {}, block: [64, 64] }]],
  splitk: [[Infinity, { shader: shader('matmul_small.wgsl'), defines: {}, block: [4, 64] }]],
  broadcast: [[4, broadcastRows(4)], [Infinity, broadcastRows(8)]],
};

/** Does the device have the `subgroups` feature (which `broadcast` needs)? */
export const hasSubgroups = (device: GPUDevice): boolean => device.features.has('subgroups');

/** Can this variant run on this device? (Only `broadcast` needs a feature; other names: yes.) */
export const variantRuns = (variant: string, device: GPUDevice): boolean => variant !== 'broadcast' || hasSubgroups(device);

/** A PgmError('option') naming `what` unless every one of `variants` runs on this device. */
export function expectVariantsRun(what: string, variants: readonly string[], device: GPUDevice): void {
  const missing = variants.find((v) => !variantRuns(v, device));
  if (missing) fail('option', `${what} '${missing}' needs the WebGPU feature 'subgroups', which this adapter does not have`);
}

export interface MatmulArgs {
  label: string;
  rows: Rows;
  x: GpuTensor; // [batch, L, K]
  /** [N, K], f32 or f16 (widened as the kernel loads it). */
  weight: GpuTensor;
  /**
   * [batch, L, N], or [batch, R, N] for a window of R rows per sequence (from `firstRow` on);
   * it may be a column view of a wider output (a block of the output layer's columns).
   */
  out: GpuTensor;
  /** [N] (a column view: the bias of a block of columns). */
  bias?: GpuTensor;
  activation?: 'gelu' | 'silu';
  /** out += gate * result, with the gate at this float offset of `modulation`. */
  gatedResidual?: { modulation: GpuTensor; gateOffset: number };
  /** The window's first row (default 0): row firstRow + i of each sequence goes to row i of `out`. */
  firstRow?: number;
  /** The plan entry's N when `weight` is a block of a larger weight's rows (default: its own N). */
  planN?: number;
  /** Run this variant at every row count instead of `ws.plan` (tests, benches, tuning). */
  variant?: MatmulVariant;
}

/**
 * out = epilogue(x @ weight^T), only over each sequence's valid rows (in the window), by the
 * plan's variant for this weight shape and the row-count bucket at encode time.
 */
export async function matmulDispatch(ws: Workspace, a: MatmulArgs): Promise<Dispatch> {
  const [N, K] = a.weight.shape;
  const op = `matmul ${a.label}`;
  const firstRow = a.firstRow ?? 0;
  const windowRows = a.out.shape[1];
  expectTensor(op, 'weight', a.weight, { shape: [N, K], dtype: ['f32', 'f16'], dense: true });
  expectTensor(op, 'x', a.x, { shape: activationShape(ws, K), dense: true });
  expectTensor(op, 'out', a.out, { shape: [ws.maxBatch, undefined, N] });
  if (!Number.isInteger(firstRow) || firstRow < 0 || firstRow >= ws.seqStride || windowRows > ws.seqStride) {
    fail('shape', `${op}: a window of ${windowRows} rows from row ${firstRow} does not fit sequences of ${ws.seqStride} rows`);
  }
  if (a.bias) expectTensor(op, 'bias', a.bias, { shape: [N] });
  const variants = a.variant ? everyBucket(a.variant) : matmulBuckets(ws.plan ?? DEFAULT_PLAN, K, a.planN ?? N, a.weight.dtype === 'f16' ? 'f16' : 'f32');
  expectVariantsRun(`matmul ${a.label}: the variant`, variants, ws.kernels.device);
  const params = paramsBuffer(ws, a.label, [K, N, a.rows, windowRows, a.gatedResidual?.gateOffset ?? 0, firstRow, a.out.rowStride, a.out.offset, a.bias?.offset ?? 0]);
  const rowCount = () => Math.min(Math.max(rowsOf(ws, a.rows) - firstRow, 0), windowRows);
  const build = async (planned: LayoutFor): Promise<Dispatch> => {
    const layout = typeof planned === 'function' ? planned(N, ws.kernels.device) : planned;
    const kernel = await ws.kernels.get({
      shader: layout.shader,
      defines: {
        ...layout.defines,
        VEC4: K % 4 === 0,
        F16W: a.weight.dtype === 'f16',
        BIAS: a.bias !== undefined,
        GELU: a.activation === 'gelu',
        SILU: a.activation === 'silu',
        GATED_RESIDUAL: a.gatedResidual !== undefined,
      },
    });
    const bindGroup = kernel.bind(a.label, [ws.dims, ws.lengths, params, a.x.buffer, a.weight.buffer, a.out.buffer, a.bias?.buffer ?? ws.unused, a.gatedResidual?.modulation.buffer ?? ws.unused]);
    const [blockRows, blockCols] = layout.block;
    return { kernel, bindGroup, grid: () => [ceilDiv(N, blockCols), ceilDiv(rowCount(), blockRows), ws.shape.batch] };
  };
  // Each bucket's variant, by the layouts of it that serve some row count of the bucket.
  const tiers = variants.flatMap((variant, i) => {
    const [least, most] = bucketRange(i);
    const serving = layouts[variant].filter(([upTo], j, all) => upTo > least && (j === 0 || all[j - 1][0] < most));
    return serving.map(([upTo, layout]) => [Math.min(upTo, most), layout] as const);
  });
  const built = new Map<LayoutFor, Promise<Dispatch>>();
  const dispatch = (layout: LayoutFor) => built.get(layout) ?? built.set(layout, build(layout)).get(layout)!;
  return byRowCount(rowCount, await Promise.all(tiers.map(async ([most, layout]) => [most, await dispatch(layout)] as const)));
}
