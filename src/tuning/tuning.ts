/**
 * Kernel variants per adapter: which matmul and attention variants run in each row-count bucket
 * (and for matmul, at each weight shape of the model) is measured once per adapter and model
 * shape at load, and remembered (plan-store.ts).
 * Nothing here knows a vendor: SwiftShader picks the register-blocked kernels and real GPUs
 * the tiled ones because that is what the clock says.
 */
import { fail } from '../errors.js';
import type { AdapterSummary } from '../gpu/context.js';
import type { Dispatch, KernelCache } from '../gpu/kernel.js';
import { GpuMemory } from '../gpu/memory.js';
import { columns, gpuTensor } from '../gpu/tensor.js';
import { record, timeRuns } from '../gpu/timing.js';
import { attentionDispatch } from '../kernels/attention.js';
import { expectVariantsRun, hasSubgroups, matmulDispatch, variantRuns } from '../kernels/matmul.js';
import {
  ANY_SHAPE,
  ATTENTION_VARIANTS,
  bucketRange,
  DEFAULT_PLAN,
  everyBucket,
  MATMUL_VARIANTS,
  matmulKey,
  matmulShapes,
  ROW_BUCKETS,
  type AttentionVariant,
  type BucketPlan,
  type KernelPlan,
  type MatmulVariant,
  type ModelShapes,
  type PlanOptions,
} from '../kernels/plan.js';
import { planKey, recall, remember } from './plan-store.js';
import { createWorkspace, Rows, setBatchShape, type Workspace } from '../kernels/workspace.js';

/** One timed shape of one variant. */
export interface Measurement {
  kernel: 'matmul' | 'attention';
  /** The plan entry it decides: `matmulKey(K, N)` for matmul, 'attention' for attention. */
  key: string;
  /** The row-count bucket it decides. */
  bucket: number;
  variant: string;
  /** [M, K, N] for matmul, [queries, keys, D] for attention. */
  shape: [number, number, number];
  ms: number;
  gflops: number;
}

function checkOption<T extends string>(name: string, value: string | undefined, names: readonly T[]): T | undefined {
  if (value === undefined || value === 'auto') return undefined;
  if (!names.includes(value as T))
    fail('option', `GpuModelOptions.${name} must be 'auto' or one of ${names.join(', ')}; got "${value}"`);
  return value as T;
}

/**
 * The kernel plan for a model on this adapter: forced variants as given, the rest remembered
 * or, when the remembered plan lacks one of the model's matmul shapes, measured now (a few ms
 * per candidate on a real GPU, under a second on SwiftShader) and added to it.
 */
export async function kernelPlan(
  gpu: { device: GPUDevice; adapter: AdapterSummary },
  kernels: KernelCache,
  shapes: ModelShapes,
  options: PlanOptions = {},
): Promise<KernelPlan> {
  const matmul = checkOption('matmul', options.matmul, MATMUL_VARIANTS);
  if (matmul) expectVariantsRun('GpuModelOptions.matmul', [matmul], gpu.device);
  const attention = checkOption('attention', options.attention, ATTENTION_VARIANTS);
  let plan = DEFAULT_PLAN;
  if (!matmul || !attention) {
    const key = planKey(gpu.adapter, hasSubgroups(gpu.device));
    // A remembered plan naming a variant this device cannot run (a cache file copied from
    // another machine, or edited) is as good as none: measured again and rewritten.
    const stored = await recall(key);
    const recalled = stored && planRuns(stored, gpu.device) ? stored : undefined;
    if (recalled && matmulShapes(shapes).every((shape) => matmulKey(...shape) in recalled.matmul)) plan = recalled;
    else {
      const measured = (await measurePlan(gpu.device, kernels, shapes)).plan;
      plan = { matmul: { ...recalled?.matmul, ...measured.matmul }, attention: measured.attention };
      await remember(key, plan);
    }
  }
  return {
    matmul: matmul ? { [ANY_SHAPE]: everyBucket(matmul) } : plan.matmul,
    attention: attention ? everyBucket(attention) : plan.attention,
  };
}

/** Every variant `plan` names runs on `device`. */
const planRuns = (plan: KernelPlan, device: GPUDevice): boolean =>
  Object.values(plan.matmul).every((buckets) => buckets.every((v) => variantRuns(v, device)));

// ---------------------------------------------------------------------------------------------
// Measuring.

/** Wall time all timed dispatches of a measurement may take together, warm-ups as much again (the close calls are timed twice). */
const BUDGET_MS = 120;
/** A timed pass repeats its dispatch until it lasts about this long (timestamps can be coarse). */
const PASS_MS = 1;
/**
 * Below this probe rate (GFLOP/s), an adapter that emulates the GPU on the CPU, only the
 * variants without workgroup memory are measured: SwiftShader turns barriers into coroutines,
 * so those take seconds to compile there, far over the load budget, and run 2-10x slower.
 */
const MIN_GFLOPS_FOR_SHARED_MEMORY = 25;
const usesWorkgroupMemory = (variant: string): boolean =>
  variant === 'tiled' || variant === 'splitk' || variant === 'flash';

interface Case {
  kernel: Measurement['kernel'];
  key: string;
  bucket: number;
  shape: [number, number, number];
  flops: number;
  variants: readonly string[];
  /** Matmul: timed with the weights stored as the model stores them, and with its LayerNorm prologue. */
  dtype?: 'f32' | 'f16';
  norm?: boolean;
}

const matmulFlops = ([M, K, N]: [number, number, number]): number => 2 * M * K * N;
const attentionFlops = ([queries, keys, D]: [number, number, number]): number => 4 * queries * keys * D;

/**
 * Matmul variants tried in bucket i: the few-row kernels up to 32 rows, `tall` (64-row blocks)
 * only above 16 rows, where its blocks are not mostly padding.
 */
function matmulCandidates(i: number): readonly MatmulVariant[] {
  const [least, most] = bucketRange(i);
  return MATMUL_VARIANTS.filter((v) =>
    v === 'tall' ? least >= 16 : v === 'wide' || v === 'splitk' ? most <= 32 : true,
  );
}

/** `value` scaled by `s`, at least `floor` (but not above `value`), a multiple of 4. */
const scaled = (value: number, s: number, floor: number): number =>
  Math.min(value, Math.max(floor, 4 * Math.round((value * s) / 4)));

/**
 * The shapes to time: each matmul weight shape and attention at the middle row count of each
 * bucket a sequence of L rows reaches. N, K and keys shrink so that each dispatch costs about
 * `flopsPerRun` on a slow adapter (with floors that keep several workgroups of every variant
 * busy); the row count never does (it is what the bucket is about). Full size on a fast adapter,
 * but N no larger than one binding of `maxFloats` floats holds (the output layer's [V, D]
 * weight is over WebGPU's default 128 MiB in f32: the model runs it in blocks of rows).
 */
function cases(
  s: ModelShapes,
  flopsPerRun: number,
  candidates: (variants: readonly string[]) => readonly string[],
  maxFloats: number,
): Case[] {
  const out: Case[] = [];
  const { L } = s;
  for (let bucket = 0; bucketRange(bucket)[0] < L; bucket++) {
    const [least, most] = bucketRange(bucket);
    const M = Math.ceil((least + 1 + Math.min(most, L)) / 2);
    for (const [K, N, dtype, norm] of matmulShapes(s)) {
      // N shrinks first (a variant's work per workgroup does not depend on it), then K.
      const n = Math.min(
        scaled(N, Math.min(1, flopsPerRun / matmulFlops([M, K, N])), 512),
        4 * Math.floor(maxFloats / Math.max(M, K) / 4),
      );
      const shape: [number, number, number] = [M, scaled(K, Math.min(1, flopsPerRun / matmulFlops([M, K, n])), 128), n];
      out.push({
        kernel: 'matmul',
        key: matmulKey(K, N, dtype, norm),
        bucket,
        shape,
        flops: matmulFlops(shape),
        variants: candidates(matmulCandidates(bucket)),
        dtype,
        norm,
      });
    }
    // [queries, keys, heads * headDim]: keys shrink first (not below the queries), then heads.
    const keys = Math.max(M, scaled(L, Math.min(1, flopsPerRun / attentionFlops([M, L, s.D])), 64));
    const heads = Math.max(1, Math.min(s.nHeads, Math.round(flopsPerRun / attentionFlops([M, keys, s.headDim]))));
    const shape: [number, number, number] = [M, keys, heads * s.headDim];
    out.push({
      kernel: 'attention',
      key: 'attention',
      bucket,
      shape,
      flops: attentionFlops(shape),
      variants: candidates(ATTENTION_VARIANTS),
    });
  }
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
  timeRuns(
    device,
    runs.map(({ dispatch, reps }) => ({ ...record(dispatch), reps, warmUp: true })),
  );

/** Zero-filled operands for every case, sized for the largest. */
interface Operands {
  x: GPUBuffer; // [M, K] for matmul, packed q/k/v [keys, 3D] for attention
  w: GPUBuffer; // [N, K]
  out: GPUBuffer; // [M, N] or [keys, D]
  constants: GPUBuffer; // a LayerNorm prologue's gain [K] and columns [2N]
}

function operands(memory: GpuMemory, all: readonly Case[]): Operands {
  const floats = (size: (c: Case) => number) => 4 * Math.max(...all.map(size));
  const matmul = (c: Case, size: (M: number, K: number, N: number) => number) =>
    c.kernel === 'matmul' ? size(...c.shape) : 0;
  const attention = (c: Case, size: (keys: number, D: number) => number) =>
    c.kernel === 'attention' ? size(c.shape[1], c.shape[2]) : 0;
  return {
    x: memory.create(
      'tuning.x',
      floats((c) =>
        Math.max(
          matmul(c, (M, K) => M * K),
          attention(c, (keys, D) => keys * 3 * D),
        ),
      ),
      GPUBufferUsage.STORAGE,
    ),
    w: memory.create(
      'tuning.w',
      floats((c) => matmul(c, (M, K, N) => N * K)),
      GPUBufferUsage.STORAGE,
    ),
    out: memory.create(
      'tuning.out',
      floats((c) =>
        Math.max(
          matmul(c, (M, K, N) => M * N),
          attention(c, (keys, D) => keys * D),
        ),
      ),
      GPUBufferUsage.STORAGE,
    ),
    constants: memory.create(
      'tuning.constants',
      floats((c) => matmul(c, (M, K, N) => K + 2 * N)),
      GPUBufferUsage.STORAGE,
    ),
  };
}

/** The dispatch of one case in one variant, or undefined when that variant does not build here. */
async function caseDispatch(
  device: GPUDevice,
  memory: GpuMemory,
  kernels: KernelCache,
  c: Case,
  variant: string,
  ops: Operands,
  s: ModelShapes,
): Promise<Dispatch | undefined> {
  try {
    if (c.kernel === 'matmul') {
      const [M, K, N] = c.shape;
      const ws = timingWorkspace(memory, kernels, M, M);
      const [x, weight, out] = [
        gpuTensor('x', ops.x, [1, M, K]),
        gpuTensor('w', ops.w, [N, K], c.dtype),
        gpuTensor('out', ops.out, [1, M, N]),
      ];
      const norm = c.norm
        ? { constants: gpuTensor('constants', ops.constants, [K + 2 * N]), norm: { gainOffset: 0, columnsOffset: K } }
        : {};
      return await matmulDispatch(ws, {
        label: `tuning.${variant}`,
        rows: Rows.Clean,
        x,
        weight,
        out,
        variant: variant as MatmulVariant,
        ...norm,
      });
    }
    const [queries, keys, D] = c.shape;
    const ws = timingWorkspace(memory, kernels, keys, queries);
    const qkv = gpuTensor('qkv', ops.x, [1, keys, 3 * D]);
    return await attentionDispatch(ws, {
      label: `tuning.${variant}`,
      queries: Rows.Query,
      q: columns(qkv, 0, D),
      k: columns(qkv, D, D),
      v: columns(qkv, 2 * D, D),
      out: gpuTensor('out', ops.out, [1, keys, D]),
      nHeads: D / s.headDim,
      headDim: s.headDim,
      variant: variant as AttentionVariant,
    });
  } catch {
    return undefined; // e.g. a compiler that rejects it: never chosen
  }
}

/** Measured flop rate (GFLOP/s) of the register matmul, growing the shape on a fast adapter. */
async function probeRate(device: GPUDevice, memory: GpuMemory, kernels: KernelCache, s: ModelShapes): Promise<number> {
  let rate = 0;
  for (const [shape, reps] of [
    [[64, 128, 128], 1],
    [[256, 768, 768], 8],
  ] as const) {
    const c: Case = {
      kernel: 'matmul',
      key: 'probe',
      bucket: 0,
      shape: [...shape],
      flops: matmulFlops([...shape]),
      variants: ['register'],
    };
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
 * for each matmul weight shape and for attention, the fastest variant in each row-count bucket
 * (buckets above the model's length L take the last one measured).
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
      variants.filter(
        (v) =>
          variantRuns(v, device) &&
          (options.everyVariant || rate >= MIN_GFLOPS_FOR_SHARED_MEMORY || !usesWorkgroupMemory(v)),
      );
    // A case with one candidate needs no clock.
    const timed = (all: Case[]) => all.filter((c) => c.variants.length > 1);
    const maxFloats = Math.floor(Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize) / 4);
    const runCount = timed(cases(shapes, Infinity, candidates, maxFloats)).reduce((n, c) => n + c.variants.length, 0);
    const all = cases(shapes, (rate * 1e6 * BUDGET_MS) / Math.max(1, runCount), candidates, maxFloats);
    const ops = operands(memory, all);
    const jobs = await Promise.all(
      timed(all).flatMap((c) =>
        c.variants.map(async (variant) => ({
          c,
          variant,
          dispatch: await caseDispatch(device, memory, kernels, c, variant, ops, shapes),
        })),
      ),
    );
    const built = jobs.filter((j): j is typeof j & { dispatch: Dispatch } => j.dispatch !== undefined);
    const reps = (c: Case) => Math.min(100, Math.max(1, Math.round(PASS_MS / (c.flops / (rate * 1e6)))));
    const ms = await time(
      device,
      built.map(({ c, dispatch }) => ({ dispatch, reps: reps(c) })),
    );
    // A CPU adapter's clock hiccups now and then: the cases whose two fastest are within 30%
    // are timed again, each run keeping its faster time.
    const close = new Set(
      built
        .map(({ c }) => c)
        .filter((c) => {
          const times = built.flatMap((b, i) => (b.c === c ? [ms[i]] : [])).sort((a, b) => a - b);
          return times.length > 1 && times[1] < 1.3 * times[0];
        }),
    );
    const again = built.flatMap((b, i) => (close.has(b.c) ? [i] : []));
    const second = await time(
      device,
      again.map((i) => ({ dispatch: built[i].dispatch, reps: reps(built[i].c) })),
    );
    again.forEach((i, j) => (ms[i] = Math.min(ms[i], second[j])));
    const measurements = built.map(({ c, variant }, i): Measurement => ({
      kernel: c.kernel,
      key: c.key,
      bucket: c.bucket,
      variant,
      shape: c.shape,
      ms: ms[i],
      gflops: c.flops / Math.max(ms[i], 1e-6) / 1e6,
    }));
    /** The fastest candidate of a case (one that failed to build is out). */
    const fastest = (c: Case): string | undefined =>
      c.variants.length === 1
        ? c.variants[0]
        : measurements.filter((m) => m.key === c.key && m.bucket === c.bucket).sort((a, b) => a.ms - b.ms)[0]?.variant;
    const buckets = <V extends string>(key: string, fallback: V): BucketPlan<V> => {
      let last = fallback;
      return ROW_BUCKETS.map((_, i) => {
        const c = all.find((c) => c.key === key && c.bucket === i);
        if (c) last = (fastest(c) ?? fallback) as V;
        return last;
      });
    };
    const plan: KernelPlan = {
      matmul: Object.fromEntries(
        matmulShapes(shapes).map((shape) => [
          matmulKey(...shape),
          buckets<MatmulVariant>(matmulKey(...shape), 'register'),
        ]),
      ),
      attention: buckets<AttentionVariant>('attention', 'thread'),
    };
    return { plan, measurements, gflops: rate };
  } finally {
    memory.releaseAll();
  }
}
