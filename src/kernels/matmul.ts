import { fail } from '../errors.js';
import { byRowCount, type Dispatch } from '../gpu/kernel.js';
import { shader, type Defines, type ShaderSource } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { bucketRange, DEFAULT_PLAN, everyBucket, matmulBuckets, type MatmulVariant } from './plan.js';
import {
  activationShape,
  batchBindings,
  ceilDiv,
  paramsBuffer,
  rowsOf,
  type Rows,
  type Workspace,
} from './workspace.js';

/** Shader file and extra defines (the block of y one workgroup covers is the shader's BLOCK_ROWS x BLOCK_COLS). */
interface Layout {
  shader: ShaderSource;
  defines: Defines;
}

/** A layout, or one chosen for the weight's N and K on this device. */
type LayoutFor = Layout | ((N: number, K: number, device: GPUDevice) => Layout);

const wideRows = (TM: number): Layout => ({ shader: shader('matmul.wgsl'), defines: { WG_X: 64, WG_Y: 1, TM } });

/**
 * `broadcast` with TM rows: 8 to 64 threads of 4 columns each, at least two column blocks where
 * N allows (few rows still make work for two CPU threads, no block is mostly idle lanes);
 * 8-lane groups where no subgroup of the device is smaller.
 */
const broadcastRows =
  (TM: number) =>
  (N: number, K: number, device: GPUDevice): Layout => {
    const WG = Math.min(64, Math.max(8, 2 ** Math.ceil(Math.log2(Math.ceil(N / 8)))));
    const SG8 = (device.adapterInfo?.subgroupMinSize ?? 4) >= 8;
    return {
      shader: shader('matmul_broadcast.wgsl'),
      defines: { TM, WG, SG8, XSCALAR: true, KTAIL: K % (SG8 ? 8 : 4) !== 0 },
    };
  };

/** Each variant's layouts by the most rows they serve (the last one: any count). */
const layouts: Record<MatmulVariant, [number, LayoutFor][]> = {
  register: [[Infinity, { shader: shader('matmul.wgsl'), defines: { WG_X: 8, WG_Y: 8, TM: 4 } }]],
  wide: [
    [4, wideRows(4)],
    [8, wideRows(8)],
    [Infinity, wideRows(16)],
  ],
  tall: [[Infinity, { shader: shader('matmul.wgsl'), defines: { WG_X: 8, WG_Y: 4, TM: 16, COLS8: true } }]],
  tiled: [[Infinity, { shader: shader('matmul_tiled.wgsl'), defines: {} }]],
  splitk: [[Infinity, { shader: shader('matmul_small.wgsl'), defines: {} }]],
  broadcast: [
    [4, broadcastRows(4)],
    [Infinity, broadcastRows(8)],
  ],
};

/** Does the device have the `subgroups` feature (which `broadcast` needs)? */
export const hasSubgroups = (device: GPUDevice): boolean => device.features.has('subgroups');

/** Can this variant run on this device? (Only `broadcast` needs a feature; other names: yes.) */
export const variantRuns = (variant: string, device: GPUDevice): boolean =>
  variant !== 'broadcast' || hasSubgroups(device);

/** A PgmError('option') naming `what` unless every one of `variants` runs on this device. */
export function expectVariantsRun(what: string, variants: readonly string[], device: GPUDevice): void {
  const missing = variants.find((v) => !variantRuns(v, device));
  if (missing)
    fail('option', `${what} '${missing}' needs the WebGPU feature 'subgroups', which this adapter does not have`);
}

export interface MatmulArgs {
  label: string;
  rows: Rows;
  x: GpuTensor; // [batch, L, K]
  norm?: NormPrologue;
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
  /** f32 constant vectors the prologue and epilogue read: the model's adaLN gates, LayerNorm gains and shifts, rotary table. */
  constants?: GpuTensor;
  /** out += gate * result, with the gate at this float offset of `constants`. */
  gatedResidual?: { gateOffset: number };
  rotary?: RotaryEpilogue;
  /** The window's first row (default 0): row firstRow + i of each sequence goes to row i of `out`. */
  firstRow?: number;
  /** The plan entry's N when `weight` is a block of a larger weight's rows (default: its own N). */
  planN?: number;
  /** Run this variant at every row count instead of `ws.plan` (tests, benches, tuning). */
  variant?: MatmulVariant;
}

/**
 * A LayerNorm of each x row first: LN(x) * gain + shift (biased variance, eps 1e-5), with no
 * pass of its own over x (shaders/matmul_io.wgsl): the gain (K floats) at `gainOffset` of
 * `constants`, and at `columnsOffset` the weight's colGain | colShift (2N floats: weight . gain,
 * weight . shift, `normColumns`).
 */
export interface NormPrologue {
  gainOffset: number;
  columnsOffset: number;
}

/**
 * Rotary embedding in the epilogue, at each row's sequence position, of a projection whose
 * weight rows (and bias) are laid out by `pairRotaryRows` (model/fusion.ts): in each head of
 * `headDim` columns the two halves a rotation mixes are adjacent columns 2i, 2i + 1, so the
 * thread that computes four columns rotates them itself. Columns c with c % period < count are
 * rotated (q | k of a packed q | k | v projection: period 3D, count 2D). The (cos, sin) table of
 * `rotaryTable` sits at `tableOffset` of `constants`.
 */
export interface RotaryEpilogue {
  positions: GpuTensor; // u32 [batch, L]: the sequence positions of the rows kind
  tableOffset: number;
  headDim: number;
  period: number;
  count: number;
}

/**
 * cos and sin of p * inv_freq for p < L, inv_freq[i] = 1 / 10000^(2i/dh), rounded like
 * PyTorch's float32 computation (inv_freq and the product in float32): [L, dh/2] (cos, sin) pairs.
 */
export function rotaryTable(L: number, headDim: number): Float32Array {
  const half = headDim / 2;
  const table = new Float32Array(2 * L * half);
  for (let i = 0; i < half; i++) {
    const invFreq = Math.fround(1 / Math.fround(10000 ** Math.fround((2 * i) / headDim)));
    for (let p = 0; p < L; p++) {
      const angle = Math.fround(p * invFreq);
      table[2 * (p * half + i)] = Math.cos(angle);
      table[2 * (p * half + i) + 1] = Math.sin(angle);
    }
  }
  return table;
}

/** A PgmError('shape') unless the rotary epilogue fits a matmul of N columns. */
function expectRotary(op: string, ws: Workspace, r: RotaryEpilogue, N: number, constants: GpuTensor | undefined): void {
  expectTensor(op, 'positions', r.positions, { shape: [ws.maxBatch, ws.seqStride], dtype: 'u32', dense: true });
  const { headDim, period, count } = r;
  if (headDim % 2 !== 0) fail('shape', `${op}: head size ${headDim} is odd; rotary needs pairs`);
  if (count % headDim !== 0 || count > period || N % period !== 0)
    fail(
      'shape',
      `${op}: rotary over ${count} of every ${period} columns does not fit ${N} columns of heads of ${headDim}`,
    );
  if (constants && r.tableOffset + ws.seqStride * headDim > cols(constants))
    fail('shape', `${op}: the rotary table at ${r.tableOffset} runs past the ${cols(constants)} constants`);
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
    fail(
      'shape',
      `${op}: a window of ${windowRows} rows from row ${firstRow} does not fit sequences of ${ws.seqStride} rows`,
    );
  }
  if (a.bias) expectTensor(op, 'bias', a.bias, { shape: [N] });
  if ((a.norm || a.gatedResidual || a.rotary) && !a.constants)
    fail('shape', `${op}: a LayerNorm prologue, gated residual or rotary epilogue needs the constants`);
  if (a.constants) expectTensor(op, 'constants', a.constants, { shape: [undefined] });
  if (a.norm && Math.max(a.norm.gainOffset + K, a.norm.columnsOffset + 2 * N) > cols(a.constants!)) {
    fail(
      'shape',
      `${op}: the LayerNorm's gain (${K} floats at ${a.norm.gainOffset}) or columns (${2 * N} at ${a.norm.columnsOffset}) run past the ${cols(a.constants!)} constants`,
    );
  }
  if (a.rotary) expectRotary(op, ws, a.rotary, N, a.constants);
  const variants = a.variant
    ? everyBucket(a.variant)
    : matmulBuckets(
        ws.plan ?? DEFAULT_PLAN,
        K,
        a.planN ?? N,
        a.weight.dtype === 'f16' ? 'f16' : 'f32',
        a.norm !== undefined,
      );
  expectVariantsRun(`matmul ${a.label}: the variant`, variants, ws.kernels.device);
  const r = a.rotary;
  const params = {
    K,
    N,
    rowsKind: a.rows,
    ySeqRows: windowRows,
    gateOffset: a.gatedResidual?.gateOffset ?? 0,
    firstRow,
    yStride: a.out.rowStride,
    yColumn: a.out.offset,
    biasColumn: a.bias?.offset ?? 0,
    ropeOffset: r?.tableOffset ?? 0,
    rotaryPeriod: r?.period ?? 0,
    rotaryCols: r?.count ?? 0,
    halfDim: (r?.headDim ?? 0) / 2,
    gainOffset: a.norm?.gainOffset ?? 0,
    columnsOffset: a.norm?.columnsOffset ?? 0,
  };
  // One uniform for every layout: they share matmul_io.wgsl's Params.
  let p: GPUBuffer | undefined;
  const rowCount = () => Math.min(Math.max(rowsOf(ws, a.rows) - firstRow, 0), windowRows);
  const build = async (planned: LayoutFor): Promise<Dispatch> => {
    const layout = typeof planned === 'function' ? planned(N, K, ws.kernels.device) : planned;
    const kernel = await ws.kernels.get({
      shader: layout.shader,
      defines: {
        ...layout.defines,
        VEC4: K % 4 === 0,
        F16W: a.weight.dtype === 'f16',
        NORM: a.norm !== undefined,
        BIAS: a.bias !== undefined,
        GELU: a.activation === 'gelu',
        SILU: a.activation === 'silu',
        GATED_RESIDUAL: a.gatedResidual !== undefined,
        ROTARY: r !== undefined,
      },
    });
    p ??= paramsBuffer(ws, kernel, a.label, params);
    const bindGroup = kernel.bind(a.label, {
      ...batchBindings(ws),
      p,
      x: a.x.buffer,
      w: a.weight.buffer,
      y: a.out.buffer,
      bias: a.bias?.buffer ?? ws.unused,
      constants: a.constants?.buffer ?? ws.unused,
      ...(r && { positions: r.positions.buffer }),
    });
    const [blockRows, blockCols] = [kernel.constant('BLOCK_ROWS'), kernel.constant('BLOCK_COLS')];
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
  return byRowCount(
    rowCount,
    await Promise.all(tiers.map(async ([most, layout]) => [most, await dispatch(layout)] as const)),
  );
}
