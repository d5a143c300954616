/**
 * What this adapter can do at best: FMA throughput (bench/peak-fma.wgsl), copy bandwidth
 * (bench/peak-bandwidth.wgsl), and the engine's own matmul kernel on a large shape.
 */
import { WGSL } from './wgsl.js';
import type { GpuContext } from '../src/gpu/context.js';
import { Kernel, KernelCache } from '../src/gpu/kernel.js';
import { GpuMemory } from '../src/gpu/memory.js';
import { gpuTensor } from '../src/gpu/tensor.js';
import { matmulDispatch, variantRuns } from '../src/kernels/matmul.js';
import { MATMUL_VARIANTS, type MatmulVariant } from '../src/kernels/plan.js';
import { encodeFloats } from '../src/weights/floats.js';
import { createWorkspace, Rows, setBatchShape } from '../src/kernels/workspace.js';
import { seededNormal } from '../src/reference/random.js';
import { record, timeDispatches } from './timing.js';

// A function: in Node, GPUBufferUsage exists only once the `webgpu` package is loaded.
const storage = (): GPUBufferUsageFlags => GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Grow the work until one run takes at least `minMs`, then keep the best of `reps`. */
async function adaptive(
  run: (scale: number) => Promise<number>,
  minMs: number,
  maxScale: number,
): Promise<{ ms: number; scale: number }> {
  let scale = 1;
  let ms = await run(scale);
  while (ms < minMs && scale < maxScale) {
    scale *= Math.min(16, Math.max(2, 2 ** Math.ceil(Math.log2(minMs / Math.max(ms, 1e-3)))));
    ms = await run(scale);
  }
  return { ms, scale };
}

/** GFLOP/s of 8 independent vec4 FMA chains per invocation. */
export async function fmaPeak(ctx: GpuContext, reps: number): Promise<number> {
  const memory = new GpuMemory(ctx.device);
  try {
    const kernel = await Kernel.create(ctx.device, { shader: { name: 'peak-fma.wgsl', code: WGSL['peak-fma.wgsl'] } });
    const groups = 4096;
    const threads = groups * kernel.workgroupSize[0];
    const out = memory.create('fma.out', threads * 16, storage());
    const params = memory.create('fma.params', 16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    const bindGroup = kernel.bind('peak-fma', { p: params, out });
    const run = async (iterations: number, n = 1): Promise<number> => {
      ctx.device.queue.writeBuffer(params, 0, kernel.pack({ iterations, mul: 0.999, add: 1e-3 }));
      const [ms] = await timeDispatches(ctx, [{ kernel, bindGroup, grid: [groups, 1, 1] }], n);
      return ms;
    };
    const { scale } = await adaptive((s) => run(16 * s), 100, 1 << 14);
    const ms = await run(16 * scale, reps);
    return (threads * 16 * scale * 64) / (ms * 1e6);
  } finally {
    memory.releaseAll();
  }
}

/** GB/s of a vec4 copy of `megabytes` (read + write counted). */
export async function bandwidthPeak(ctx: GpuContext, megabytes: number, reps: number): Promise<number> {
  const memory = new GpuMemory(ctx.device);
  try {
    const kernel = await Kernel.create(ctx.device, {
      shader: { name: 'peak-bandwidth.wgsl', code: WGSL['peak-bandwidth.wgsl'] },
    });
    const bytes = Math.min(megabytes * 2 ** 20, ctx.device.limits.maxStorageBufferBindingSize);
    const count = Math.floor(bytes / 16);
    const src = memory.create('bandwidth.src', count * 16, storage());
    const dst = memory.create('bandwidth.dst', count * 16, storage());
    const params = memory.create('bandwidth.params', 16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST);
    ctx.device.queue.writeBuffer(params, 0, kernel.pack({ count, scale: 1.5 }));
    const groups = Math.min(4096, Math.ceil(count / kernel.workgroupSize[0]));
    const bindGroup = kernel.bind('peak-bandwidth', { p: params, src, dst });
    const [ms] = await timeDispatches(ctx, [{ kernel, bindGroup, grid: [groups, 1, 1] }], reps);
    return (2 * count * 16) / (ms * 1e6);
  } finally {
    memory.releaseAll();
  }
}

export interface MatmulPeak {
  /** [M, K, N]: out[M, N] = x[M, K] @ w[N, K]^T. */
  shape: [number, number, number];
  /** The fastest variant (`name` with f32 weights, `name:f16` with f16 weights) and its GFLOP/s. */
  variant: string;
  bestGflops: number;
  /** GFLOP/s of every variant, with f32 and with f16 weights. */
  variants: Record<string, number>;
}

/** The engine's matmul kernels (src/kernels/matmul.ts, every variant) on one large shape. */
export async function matmulPeak(
  ctx: GpuContext,
  [M, K, N]: [number, number, number],
  reps: number,
): Promise<MatmulPeak> {
  const { device } = ctx;
  const memory = new GpuMemory(device);
  try {
    const ws = createWorkspace(memory, new KernelCache(device), M, 1);
    const normal = seededNormal(7);
    const random = (n: number) => Float32Array.from({ length: n }, normal);
    const x = gpuTensor('x', memory.upload('x', random(M * K)), [1, M, K]);
    const w = random(N * K);
    const halves = new Uint16Array(N * K + ((N * K) % 2)); // whole u32 words
    halves.set(new Uint16Array(encodeFloats(w, 'F16').buffer));
    const weights = {
      f32: gpuTensor('weight', memory.upload('weight', w), [N, K]),
      f16: gpuTensor('weight.f16', memory.upload('weight.f16', halves), [N, K], 'f16'),
    };
    const bias = gpuTensor('bias', memory.upload('bias', random(N)), [N]);
    const out = gpuTensor('out', memory.create('out', M * N * 4, storage()), [1, M, N]);
    setBatchShape(ws, [M], [0]);
    const best: MatmulPeak = { shape: [M, K, N], variant: '', bestGflops: 0, variants: {} };
    const gflops = async (name: string, n: number): Promise<number> => {
      const [variant, dtype = 'f32'] = name.split(':') as [MatmulVariant, 'f16' | undefined];
      const weight = weights[dtype];
      const dispatch = await matmulDispatch(ws, {
        label: `bench.matmul.${name}`,
        rows: Rows.Clean,
        x,
        weight,
        bias,
        activation: 'gelu',
        out,
        variant,
      });
      await timeDispatches(ctx, [record(dispatch)], 1); // a warm-up: some drivers compile on first use
      const [ms] = await timeDispatches(ctx, [record(dispatch)], n);
      return (2 * M * K * N) / (ms * 1e6);
    };
    // Every variant once with f32 and with f16 weights (as the shipped models store them), then
    // the fastest `reps` more times (the slow ones take long on SwiftShader).
    const names = MATMUL_VARIANTS.filter((v) => variantRuns(v, device)).flatMap((v) => [v, `${v}:f16`]);
    for (const variant of names) {
      best.variants[variant] = await gflops(variant, 1);
      if (best.variants[variant] > best.bestGflops)
        Object.assign(best, { variant, bestGflops: best.variants[variant] });
    }
    const v = best.variant;
    best.variants[v] = best.bestGflops = Math.max(best.bestGflops, await gflops(v, reps));
    return best;
  } finally {
    memory.releaseAll();
  }
}
