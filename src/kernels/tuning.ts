/**
 * Kernel variants per adapter: which matmul and attention variants run for many and for few
 * rows is measured once per adapter at model load, on a few shapes of the model, and
 * remembered (plan-store.ts).
 * Nothing here knows a vendor: SwiftShader picks the register-blocked kernels and real GPUs
 * the tiled ones because that is what the clock says.
 */
import { fail } from '../errors.js';
import type { AdapterSummary } from '../gpu/context.js';
import type { Dispatch, KernelCache } from '../gpu/kernel.js';
import { GpuMemory } from '../gpu/memory.js';
import { columns, gpuTensor } from '../gpu/tensor.js';
import { record, timeRuns } from '../gpu/timing.js';
import { attentionDispatch } from './attention.js';
import { matmulDispatch } from './matmul.js';
import {
  ATTENTION_VARIANTS, DEFAULT_ATTENTION_PLAN, DEFAULT_MATMUL_PLAN, DEFAULT_PLAN, MATMUL_VARIANTS,
  type AttentionVariant, type KernelPlan, type MatmulVariant, type ModelShapes, type PlanOptions,
} from './plan.js';
import { planKey, recall, remember } from './plan-store.js';
import { createWorkspace, Rows, setBatchShape, type Workspace } from './workspace.js';

/** One timed shape of one variant. */
export interface Measurement {
  kernel: 'matmul' | 'attention';
  /** Which half of the plan it decides. */
  rows: 'large' | 'small';
  variant: string;
  /** [M, K, N] for matmul, [queries, keys, D] for attention. */
  shape: [number, number, number];
  ms: number;
  gflops: number;
}

function checkOption<T extends string>(name: string, value: string | undefined, names: readonly T[]): T | undefined {
  if (value === undefined || value === 'auto') return undefined;
  if (!names.includes(value as T)) fail('option', `GpuModelOptions.${name} must be 'auto' or one of ${names.join(', ')}; got "${value}"`);
  return value as T;
}

/**
 * The kernel plan for a model on this adapter: forced variants as given, the rest remembered
 * or measured now (a few ms per candidate on a real GPU, about 0.3 s on SwiftShader).
 */
export async function kernelPlan(
  gpu: { device: GPUDevice; adapter: AdapterSummary },
  kernels: KernelCache,
  shapes: ModelShapes,
  options: PlanOptions = {},
): Promise<KernelPlan> {
  const matmul = checkOption('matmul', options.matmul, MATMUL_VARIANTS);
  const attention = checkOption('attention', options.attention, ATTENTION_VARIANTS);
  let plan = DEFAULT_PLAN;
  if (!matmul || !attention) {
    const key = planKey(gpu.adapter);
    plan = (await recall(key)) ?? (await measurePlan(gpu.device, kernels, shapes)).plan;
    await remember(key, plan);
  }
  return {
    matmul: matmul ? { large: matmul, small: matmul } : plan.matmul,
    attention: attention ? { large: attention, small: attention } : plan.attention,
  };
}

// ---------------------------------------------------------------------------------------------
// Measuring.

/** Rows of the "few rows" shapes: a handful of decoder queries. */
const FEW = 8;
/** Wall time all timed dispatches of a measurement may take together, warm-ups as much again. */
const BUDGET_MS = 120;
/** A timed pass repeats its dispatch until it lasts about this long (timestamps can be coarse). */
const PASS_MS = 1;
/**
 * Below this probe rate (GFLOP/s), an adapter that emulates the GPU on the CPU, only the
 * variants without workgroup memory are measured: SwiftShader turns barriers into coroutines,
 * so those take seconds to compile there, far over the load budget, and run 2-10x slower.
 */
const MIN_GFLOPS_FOR_SHARED_MEMORY = 25;
const usesWorkgroupMemory = (variant: string): boolean => variant === 'tiled' || variant === 'splitk' || variant === 'flash';

interface Case {
  kernel: Measurement['kernel'];
  rows: Measurement['rows'];
  shape: [number, number, number];
  flops: number;
  variants: readonly string[];
}

const matmulFlops = ([M, K, N]: [number, number, number]): number => 2 * M * K * N;
const attentionFlops = ([queries, keys, D]: [number, number, number]): number => 4 * queries * keys * D;

/** Matmul variants tried for many rows, and for few (`tall`'s 64-row blocks would be mostly padding there). */
const LARGE_CANDIDATES: readonly MatmulVariant[] = ['register', 'tall', 'tiled'];
const SMALL_CANDIDATES: readonly MatmulVariant[] = MATMUL_VARIANTS.filter((v) => v !== 'tall');

/** `value` scaled by `s`, at least `floor`, a multiple of 4. */
const scaled = (value: number, s: number, floor: number): number => Math.max(floor, 4 * Math.round((value * s) / 4));

/**
 * The shapes to time, shrunk so that each dispatch costs about `flopsPerRun` (with floors that
 * keep several workgroups of every variant busy) on a slow adapter; full size on a fast one.
 */
function cases(s: ModelShapes, flopsPerRun: number, candidates: (variants: readonly string[]) => readonly string[]): Case[] {
  const out: Case[] = [];
  const matmul = (rows: Case['rows'], M: number, K: number, N: number) => {
    const large = rows === 'large';
    const f = Math.min(1, flopsPerRun / matmulFlops([M, K, N]));
    const k = large ? Math.cbrt(f) : Math.sqrt(f);
    const shape: [number, number, number] = [large ? scaled(M, k, 64) : M, scaled(K, k, 32), scaled(N, k, large ? 128 : 512)];
    out.push({ kernel: 'matmul', rows, shape, flops: matmulFlops(shape), variants: candidates(large ? LARGE_CANDIDATES : SMALL_CANDIDATES) });
  };
  const { D, F, L } = s;
  matmul('large', L, D, 3 * D);
  matmul('large', L, D, F);
  matmul('large', L, F, D);
  matmul('small', FEW, D, D);
  matmul('small', FEW, D, F);
  matmul('small', FEW, F, D);
  matmul('small', FEW, D, Math.min(s.V, 8192));
  // [queries, keys, heads * headDim]: rows shrink first, then heads.
  const attention = (rows: Case['rows'], queries: number) => {
    const large = rows === 'large';
    const f = Math.min(1, flopsPerRun / attentionFlops([queries, L, D]));
    const k = large ? Math.sqrt(f) : f;
    const [m, n] = [large ? scaled(queries, k, 64) : queries, scaled(L, k, 64)];
    const heads = Math.max(1, Math.min(s.nHeads, Math.round(flopsPerRun / attentionFlops([m, n, s.headDim]))));
    const shape: [number, number, number] = [m, n, heads * s.headDim];
    out.push({ kernel: 'attention', rows, shape, flops: attentionFlops(shape), variants: candidates(ATTENTION_VARIANTS) });
  };
  attention('large', L);
  attention('small', FEW);
  return out;
}

/** A workspace of one sequence with `clean` clean rows and `queries` query rows, for timing. */
function timingWorkspace(memory: GpuMemory, kernels: KernelCache, clean: number, queries: number): Workspace {
  const ws = createWorkspace(memory, kernels, clean, 1);
  setBatchShape(ws, [clean], [queries]);
  return ws;
}

interface Timed {
  dispatch: Dispatch;
  reps: number;
}

/** Milliseconds per dispatch of each run, each after one warm-up dispatch. */
const time = (device: GPUDevice, runs: readonly Timed[]): Promise<number[]> =>
  timeRuns(device, runs.map(({ dispatch, reps }) => ({ ...record(dispatch), reps, warmUp: true })));

/** Zero-filled operands for every case, sized for the largest. */
interface Operands {
  x: GPUBuffer; // [M, K] for matmul, packed q/k/v [keys, 3D] for attention
  w: GPUBuffer; // [N, K]
  out: GPUBuffer; // [M, N] or [keys, D]
}

function operands(memory: GpuMemory, all: readonly Case[]): Operands {
  const floats = (size: (c: Case) => number) => 4 * Math.max(...all.map(size));
  const matmul = (c: Case, size: (M: number, K: number, N: number) => number) => (c.kernel === 'matmul' ? size(...c.shape) : 0);
  const attention = (c: Case, size: (keys: number, D: number) => number) => (c.kernel === 'attention' ? size(c.shape[1], c.shape[2]) : 0);
  return {
    x: memory.create('tuning.x', floats((c) => Math.max(matmul(c, (M, K) => M * K), attention(c, (keys, D) => keys * 3 * D))), GPUBufferUsage.STORAGE),
    w: memory.create('tuning.w', floats((c) => matmul(c, (M, K, N) => N * K)), GPUBufferUsage.STORAGE),
    out: memory.create('tuning.out', floats((c) => Math.max(matmul(c, (M, K, N) => M * N), attention(c, (keys, D) => keys * D))), GPUBufferUsage.STORAGE),
  };
}

/** The dispatch of one case in one variant, or undefined when that variant does not build here. */
async function caseDispatch(device: GPUDevice, memory: GpuMemory, kernels: KernelCache, c: Case, variant: string, ops: Operands, s: ModelShapes): Promise<Dispatch | undefined> {
  try {
    if (c.kernel === 'matmul') {
      const [M, K, N] = c.shape;
      const ws = timingWorkspace(memory, kernels, M, M);
      const [x, weight, out] = [gpuTensor('x', ops.x, [1, M, K]), gpuTensor('w', ops.w, [N, K]), gpuTensor('out', ops.out, [1, M, N])];
      return await matmulDispatch(ws, { label: `tuning.${variant}`, rows: Rows.Clean, x, weight, out, variant: variant as MatmulVariant });
    }
    const [queries, keys, D] = c.shape;
    const ws = timingWorkspace(memory, kernels, keys, queries);
    const qkv = gpuTensor('qkv', ops.x, [1, keys, 3 * D]);
    return await attentionDispatch(ws, {
      label: `tuning.${variant}`, queries: Rows.Query, q: columns(qkv, 0, D), k: columns(qkv, D, D), v: columns(qkv, 2 * D, D), out: gpuTensor('out', ops.out, [1, keys, D]),
      nHeads: D / s.headDim, headDim: s.headDim, variant: variant as AttentionVariant,
    });
  } catch {
    return undefined; // e.g. a compiler that rejects it: never chosen
  }
}

/** Measured flop rate (GFLOP/s) of the register matmul, growing the shape on a fast adapter. */
async function probeRate(device: GPUDevice, memory: GpuMemory, kernels: KernelCache, s: ModelShapes): Promise<number> {
  let rate = 0;
  for (const [shape, reps] of [[[64, 128, 128], 1], [[256, 768, 768], 8]] as const) {
    const c: Case = { kernel: 'matmul', rows: 'large', shape: [...shape], flops: matmulFlops([...shape]), variants: ['register'] };
    const dispatch = await caseDispatch(device, memory, kernels, c, 'register', operands(memory, [c]), s);
    if (!dispatch) return Infinity;
    const [ms] = await time(device, [{ dispatch, reps }]);
    rate = c.flops / Math.max(ms, 1e-3) / 1e6;
    if (ms * reps >= PASS_MS) break;
  }
  return rate;
}

/**
 * Time the candidate variants on the model's shapes (scaled to the adapter's speed) and pick,
 * for each half of the plan, the variant with the least total time over its shapes.
 * `everyVariant` measures the workgroup-memory variants even on a CPU-emulated adapter
 * (benches). `gflops` is the probe rate of the register matmul.
 */
export async function measurePlan(
  device: GPUDevice,
  kernels: KernelCache,
  shapes: ModelShapes,
  options: { everyVariant?: boolean } = {},
): Promise<{ plan: KernelPlan; measurements: Measurement[]; gflops: number }> {
  const memory = new GpuMemory(device);
  try {
    const rate = await probeRate(device, memory, kernels, shapes);
    const candidates = (variants: readonly string[]) =>
      variants.filter((v) => options.everyVariant || rate >= MIN_GFLOPS_FOR_SHARED_MEMORY || !usesWorkgroupMemory(v));
    // A half of the plan with one candidate needs no clock.
    const timed = (all: Case[]) => all.filter((c) => c.variants.length > 1);
    const runCount = timed(cases(shapes, Infinity, candidates)).reduce((n, c) => n + c.variants.length, 0);
    const all = cases(shapes, (rate * 1e6 * BUDGET_MS) / Math.max(1, runCount), candidates);
    const ops = operands(memory, all);
    const jobs = await Promise.all(
      timed(all).flatMap((c) => c.variants.map(async (variant) => ({ c, variant, dispatch: await caseDispatch(device, memory, kernels, c, variant, ops, shapes) }))),
    );
    const built = jobs.filter((j): j is typeof j & { dispatch: Dispatch } => j.dispatch !== undefined);
    const reps = (c: Case) => Math.min(10, Math.max(1, Math.round(PASS_MS / (c.flops / (rate * 1e6)))));
    const ms = await time(device, built.map(({ c, dispatch }) => ({ dispatch, reps: reps(c) })));
    const measurements = built.map(({ c, variant }, i): Measurement => ({
      kernel: c.kernel, rows: c.rows, variant, shape: c.shape, ms: ms[i], gflops: c.flops / Math.max(ms[i], 1e-6) / 1e6,
    }));
    /** The candidate with the least total time over all shapes of this half (one that failed to build on any shape is out). */
    const fastest = <T extends string>(kernel: Case['kernel'], rows: Case['rows'], fallback: T): T => {
      const half = all.filter((c) => c.kernel === kernel && c.rows === rows);
      const variants = half[0]?.variants ?? [];
      if (variants.length === 1) return variants[0] as T;
      let best: [string, number] | undefined;
      for (const variant of variants) {
        const times = measurements.filter((m) => m.kernel === kernel && m.rows === rows && m.variant === variant).map((m) => m.ms);
        const total = times.reduce((a, t) => a + t, 0);
        if (times.length === half.length && (!best || total < best[1])) best = [variant, total];
      }
      return (best?.[0] ?? fallback) as T;
    };
    const plan: KernelPlan = {
      matmul: { large: fastest('matmul', 'large', DEFAULT_MATMUL_PLAN.large), small: fastest('matmul', 'small', DEFAULT_MATMUL_PLAN.small) },
      attention: { large: fastest('attention', 'large', DEFAULT_ATTENTION_PLAN.large), small: fastest('attention', 'small', DEFAULT_ATTENTION_PLAN.small) },
    };
    return { plan, measurements, gflops: rate };
  } finally {
    memory.releaseAll();
  }
}
