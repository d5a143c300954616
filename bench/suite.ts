/**
 * The benchmark, runtime-agnostic: give it a GpuContext (Chromium's navigator.gpu or Node's
 * `webgpu`). PGM vs MDLM at the paper's pairing (PGM n/n encoder/decoder blocks vs MDLM 2n
 * blocks, same width, vocabulary, length and steps), random weights, driven through the
 * engine's own sampling loops (src/sampling/samplers.ts) on a GpuModel.
 */
import type { AdapterSummary, GpuContext } from '../src/gpu/context.js';
import { observeDispatches } from '../src/gpu/kernel.js';
import type { ModelConfig } from '../src/weights/config.js';
import { decoderKvGroups } from '../src/model/fusion.js';
import { GpuModel } from '../src/model/gpu-model.js';
import { randomWeights, tinyConfig } from '../src/reference/random.js';
import {
  plainSampling,
  sampleMdlm,
  samplePgm,
  type BatchStep,
  type SamplingOptions,
  type SequencePlan,
} from '../src/sampling/samplers.js';
import { forwardFlops, mdlmOps, pgmOps, sampleOp, type Op, type OpClass } from './flops.js';
import { bandwidthPeak, fmaPeak, matmulPeak } from './peak.js';
import { hasTimestamps, record, timeDispatches, type RecordedDispatch } from './timing.js';

export type BenchMode = 'quick' | 'default' | 'owt';

/** One model width shared by the PGM and the MDLM of a comparison. */
export interface Shape {
  D: number;
  H: number;
  /** PGM encoder = decoder blocks; the MDLM has twice as many. */
  halfBlocks: number;
  V: number;
  L: number;
}

/** A KV-set case: the exact PGM and the incremental (or delayed) one (refresh 0: never) stepped in turns. */
export interface IncrementalCase {
  steps: number;
  refresh: number;
  encoder?: 'incremental' | 'delayed';
}

export interface Plan {
  mode: BenchMode;
  /** Per shape: PGM vs MDLM cases, KV-set cases, and the steps of the whole generations users compare (`GenerationMetrics`; none: not run). */
  shapes: {
    shape: Shape;
    cases: { steps: number; batch: number }[];
    incremental: IncrementalCase[];
    generations?: number;
  }[];
  /** Timed repetitions per case (PGM and MDLM stepped in turns; the fastest of each is kept). */
  reps: number;
  /** The case whose middle PGM step and first MDLM step are profiled kernel by kernel. */
  profile: { L: number; steps: number; batch: number };
  matmulShape: [number, number, number];
  bandwidthMB: number;
}

/** The bench's small model (quick and default modes) at length L. */
export const smallShape = (L: number): Shape => ({ D: 128, H: 4, halfBlocks: 2, V: 8192, L });

export function plan(mode: BenchMode): Plan {
  if (mode === 'owt') {
    return {
      mode,
      shapes: [
        {
          shape: { D: 768, H: 12, halfBlocks: 6, V: 50258, L: 1024 },
          cases: [
            { steps: 128, batch: 1 },
            { steps: 128, batch: 4 },
          ],
          incremental: [
            { steps: 128, refresh: 0 },
            { steps: 128, refresh: 8 },
          ],
          generations: 128,
        },
      ],
      reps: 2,
      profile: { L: 1024, steps: 128, batch: 1 },
      matmulShape: [1024, 768, 3072],
      bandwidthMB: 256,
    };
  }
  if (mode === 'quick') {
    return {
      mode,
      shapes: [
        {
          shape: smallShape(128),
          cases: [
            { steps: 16, batch: 1 },
            { steps: 32, batch: 1 },
          ],
          incremental: [
            { steps: 16, refresh: 0 },
            { steps: 32, refresh: 0 },
          ],
          generations: 16,
        },
      ],
      reps: 1,
      profile: { L: 128, steps: 16, batch: 1 },
      matmulShape: [512, 768, 768],
      bandwidthMB: 32,
    };
  }
  return {
    mode,
    shapes: [
      // Sized for about 8 minutes on SwiftShader in Chromium on 2 idle cores (MDLM forwards dominate).
      {
        shape: smallShape(128),
        cases: [
          { steps: 16, batch: 1 },
          { steps: 32, batch: 1 },
          { steps: 64, batch: 1 },
          { steps: 16, batch: 8 },
        ],
        incremental: [
          { steps: 16, refresh: 0 },
          { steps: 64, refresh: 0 },
        ],
      },
      {
        shape: smallShape(256),
        cases: [
          { steps: 16, batch: 1 },
          { steps: 32, batch: 1 },
          { steps: 128, batch: 1 },
        ],
        incremental: [
          { steps: 16, refresh: 0 },
          { steps: 64, refresh: 0 },
          { steps: 64, refresh: 8 },
          { steps: 64, refresh: 4 },
          { steps: 64, refresh: 0, encoder: 'delayed' },
          { steps: 128, refresh: 0 },
        ],
        generations: 64,
      },
    ],
    reps: 1,
    profile: { L: 256, steps: 32, batch: 1 },
    matmulShape: [512, 768, 768],
    bandwidthMB: 64,
  };
}

export const shapeName = (s: Shape): string =>
  `D${s.D} H${s.H} V${s.V} L${s.L}, PGM ${s.halfBlocks}/${s.halfBlocks} vs MDLM ${2 * s.halfBlocks}`;

/**
 * The one PGM forward pass the peer runs (exported by training/export_onnx.py): the profiled
 * shape at about the profiled middle step, half the sequence clean and L/steps queries, batch 1.
 */
export interface PeerShape {
  shape: Shape;
  clean: number;
  queries: number;
}

export function peerShape(mode: BenchMode): PeerShape {
  const { profile, shapes } = plan(mode);
  const shape = shapes.map((s) => s.shape).find((s) => s.L === profile.L)!;
  return { shape, clean: profile.L / 2, queries: profile.L / profile.steps };
}

/** The export's folder name under bench/peer/out/. */
export const peerDirName = ({ shape: s, clean, queries }: PeerShape): string =>
  `D${s.D}-H${s.H}-B${s.halfBlocks}-V${s.V}-L${s.L}-n${clean}-m${queries}`;

export interface E2eResult {
  shape: string;
  L: number;
  steps: number;
  batch: number;
  /** Latency of one generation of `batch` samples of L tokens: the wall clock of all its steps (submits, readbacks, host work). */
  pgmMs: number;
  mdlmMs: number;
  /** mdlmMs / pgmMs: PGM's measured speed-up. */
  ratio: number;
  /** MDLM FLOPs / PGM FLOPs (matmul + attention) of the forwards each sampler actually ran. */
  flopRatio: number;
  pgmTokensPerS: number;
  mdlmTokensPerS: number;
  pgmForwards: number;
  mdlmForwards: number;
  pgmGflop: number;
  mdlmGflop: number;
  /** Achieved GFLOP/s over the whole generation (wall clock). */
  pgmGflops: number;
  mdlmGflops: number;
}

/** The exact PGM vs the incremental encoder (its KV set), same model, batch 1, stepped in turns. */
export interface IncrementalResult {
  shape: string;
  L: number;
  steps: number;
  encoder: 'incremental' | 'delayed';
  /** Every step % refresh == 0 re-encodes all clean tokens; null: never. */
  refresh: number | null;
  exactMs: number;
  incrementalMs: number;
  /** exactMs / incrementalMs. */
  speedup: number;
  /** Rows each encoder ran over, summed over the steps (the work the KV set saves). */
  exactEncoderRows: number;
  incrementalEncoderRows: number;
}

/**
 * One whole generation as the engine runs it (a step in flight where the sampler keeps one),
 * batch 1, timed by the step events a page sees; the best of the suite's repetitions.
 */
export interface GenerationMetrics {
  shape: string;
  L: number;
  steps: number;
  /** 'PGM exact', 'PGM KV set (delayed)' or 'MDLM'. */
  model: string;
  /** From the call to the first step event that reveals a token: what a page shows first. */
  firstTokenMs: number;
  /** Generated tokens (the suite: L - 1) per second of the whole generation. */
  tokensPerS: number;
  totalMs: number;
  /** Between consecutive step events (the first from the call), median and 95th percentile. */
  msPerStepP50: number;
  msPerStepP95: number;
  /** Steps that ran the network (the MDLM skips it when nothing changed). */
  forwards: number;
  /** Dispatches of such a step: its forward pass and the sampler (mean). */
  dispatchesPerStep: number;
  /** Bytes of weights those dispatches read, each matmul weight once and the embedding rows gathered (mean; the bench's weights are f32). */
  weightBytesPerStep: number;
}

/** The PGM with one step in flight (the sampler's default) against one step at a time, batch 1. */
export interface OverlapResult {
  shape: string;
  L: number;
  steps: number;
  overlapMs: number;
  oneAtATimeMs: number;
  /** oneAtATimeMs / overlapMs. */
  speedup: number;
}

export interface KernelRow {
  arch: 'pgm' | 'mdlm';
  /** Kernel file and dispatch label with block indices folded: `matmul.wgsl encoder.blocks.*.attn_qkv`. */
  name: string;
  cls: OpClass;
  calls: number;
  ms: number;
  /** Of the profiled step's summed GPU time. */
  share: number;
  gflops: number | null;
  gbps: number | null;
  /** GFLOP/s over the FMA peak (matmul, attention) or GB/s over the bandwidth peak (others). */
  fractionOfPeak: number;
}

export interface ProfiledStep {
  arch: 'pgm' | 'mdlm';
  shape: string;
  steps: number;
  batch: number;
  step: number;
  /** Per sequence: rows the encoder (MDLM: every block) and the decoder ran over. */
  clean: number[];
  queries: number[];
  /** Wall clock of the step in the sampling loop (submit, GPU work, readback). */
  wallMs: number;
  /** Sum of the kernels' GPU times (timestamps, or one awaited submit each). */
  gpuMs: number;
  dispatches: number;
}

/** Our engine and onnxruntime-web on the same exported forward pass, same input (bench/peer.ts). */
export interface PeerResult {
  /** `PGM D128 H4 2/2 V8192 L128, n=64 clean, m=8 queries, batch 1`. */
  model: string;
  /** Median wall-clock ms of one forward pass over `runs` (inputs written, logits [1, m, V] read back). */
  oursMs: number;
  /** null when ORT failed on this EP; the error is in ortWebgpuError / ortWasmError. */
  ortWebgpuMs: number | null;
  ortWasmMs: number | null;
  ortWebgpuError?: string;
  ortWasmError?: string;
  /** Timed forwards after the warm-up (fewer for a slow engine, see bench/peer.ts). */
  runs: { ours: number; ortWebgpu: number; ortWasm: number };
  logitsShape: number[];
  /** Largest |logit difference| against PyTorch's fp32 CPU logits, and ours vs ORT's WebGPU EP. */
  maxAbsDiff: {
    oursVsTorch: number;
    ortWebgpuVsTorch: number | null;
    ortWasmVsTorch: number | null;
    oursVsOrtWebgpu: number | null;
  };
  ort: {
    version: string;
    /** ort.env.wasm.numThreads: navigator.hardwareConcurrency when crossOriginIsolated, else 1. */
    wasmThreads: number;
    crossOriginIsolated: boolean;
    /** 'ours': ORT's native WebGPU EP ran on the suite's GPUDevice; 'none': it failed. */
    webgpuDevice: string;
  };
}

export interface BenchResult {
  adapter: AdapterSummary & { runtime: string; timestamps: boolean };
  date: string;
  mode: BenchMode;
  e2e: E2eResult[];
  incremental: IncrementalResult[];
  overlap: OverlapResult[];
  generations: GenerationMetrics[];
  /** onnxruntime-web on the same forward pass (Chromium only: its WebGPU EP is browser-only). */
  peer: PeerResult | null;
  peak: { fmaGflops: number; bandwidthGBs: number };
  matmul: {
    shape: [number, number, number];
    variant: string;
    bestGflops: number;
    variants: Record<string, number>;
    peakGflops: number;
    fraction: number;
  };
  profile: ProfiledStep[];
  kernels: KernelRow[];
  /** Milliseconds the whole suite took. */
  totalMs: number;
}

export interface SuiteOptions {
  mode: BenchMode;
  runtime: string;
  log?: (line: string) => void;
  /** Runs the peer comparison on the suite's device (bench/peer.ts); none: `peer` is null. */
  peer?: (ctx: GpuContext, log: (line: string) => void) => Promise<PeerResult>;
}

export function modelConfig(arch: 'pgm' | 'mdlm', s: Shape): ModelConfig {
  return tinyConfig(arch, {
    vocabSize: s.V,
    hiddenSize: s.D,
    nHeads: s.H,
    condDim: 128,
    mlpDim: 4 * s.D,
    length: s.L,
    encoderBlocks: arch === 'pgm' ? s.halfBlocks : 0,
    decoderBlocks: arch === 'pgm' ? s.halfBlocks : 0,
    nBlocks: arch === 'mdlm' ? 2 * s.halfBlocks : 0,
  });
}

/** A generation's encoder: exact, or incremental with a refresh period (0: never). */
interface Encoding {
  encoder: SamplingOptions['encoder'];
  refresh: number;
}

const EXACT: Encoding = { encoder: 'exact', refresh: 0 };

/**
 * The KV set of the metrics users compare: the fastest setting the README's quality table
 * finds no cost in (delayed: +0.05 ± 0.07 nats/token against exact, an interval containing 0;
 * refresh 8 is slower).
 */
const KV_SET: Encoding = { encoder: 'delayed', refresh: 0 };

function plans(config: ModelConfig, batch: number): SequencePlan[] {
  return Array.from({ length: batch }, (_, b) => ({ known: new Map([[0, config.bosId]]), seed: 1000 + b }));
}

/** A generation's steps; `overlap: false` (profiling, stepping in turns) keeps no step in flight, so each call runs exactly its own step. */
function steps(
  model: GpuModel,
  batch: number,
  L: number,
  nSteps: number,
  encoding = EXACT,
  overlap = true,
): AsyncGenerator<BatchStep> {
  const o = plainSampling(L, nSteps, encoding);
  const p = plans(model.config, batch);
  return (model.config.arch === 'pgm' ? samplePgm : sampleMdlm)(model, p, o, undefined, { overlap });
}

/** One whole generation of batch 1, as users run it: its GenerationMetrics. */
const generation = (model: GpuModel, name: string, nSteps: number, encoding: Encoding): Promise<GenerationTimes> =>
  timeGeneration(model, name, model.config.length - 1, () => steps(model, 1, model.config.length, nSteps, encoding));

/** A step as the metrics see it: per sequence its revealed tokens and rows, and whether it ran the network. */
export type ObservedStep = Pick<BatchStep, 'forward' | 'encoderRows' | 'decoderRows'> & {
  revealed: readonly (readonly unknown[])[];
};

/** GenerationMetrics less what names the run. */
export type GenerationTimes = Omit<GenerationMetrics, 'shape' | 'L' | 'steps' | 'model'>;

/**
 * Time the generation `start` begins (called once the clock runs) by its step events: the
 * first that reveals a token, the intervals between them, and `tokens` generated tokens per
 * second; and count, through the kernel observer, the dispatches and weight bytes of its steps.
 */
export async function timeGeneration(
  model: GpuModel,
  name: string,
  tokens: number,
  start: () => AsyncIterable<ObservedStep>,
): Promise<GenerationTimes> {
  // A submitted step is one synchronous run of encodeDispatches: its dispatches are counted
  // until the next microtask, and the step counts if it ran the network (not only the sampler,
  // as an MDLM step that reuses its logits does). The logits may take several windows, each
  // with its output layer and sampler dispatch. (An MDLM step kept in flight after the last
  // reveal runs the network too, and counts.)
  const passes = { count: 0, dispatches: 0 };
  let submit: { dispatches: number; network: boolean } | undefined;
  let weightBytes = 0;
  let forwards = 0;
  let firstTokenMs = NaN;
  const intervals: number[] = [];
  observeDispatches((d) => {
    if (!submit) {
      const current = (submit = { dispatches: 0, network: false });
      queueMicrotask(() => {
        submit = undefined;
        if (current.network)
          Object.assign(passes, { count: passes.count + 1, dispatches: passes.dispatches + current.dispatches });
      });
    }
    submit.dispatches++;
    if (d.kernel.name !== 'sample.wgsl') submit.network = true;
  });
  const t0 = performance.now();
  let last = t0;
  try {
    for await (const ev of start()) {
      const t = performance.now();
      intervals.push(t - last);
      last = t;
      if (Number.isNaN(firstTokenMs) && ev.revealed.some((r) => r.length > 0)) firstTokenMs = t - t0;
      if (ev.forward) {
        forwards++;
        weightBytes += stepOps(model, ev).reduce((a, o) => a + o.weights, 0);
      }
    }
  } finally {
    observeDispatches(undefined);
  }
  const totalMs = performance.now() - t0;
  const sorted = [...intervals].sort((a, b) => a - b);
  const percentile = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
  if (Number.isNaN(firstTokenMs)) throw new Error(`bench: ${name} revealed no token`);
  return {
    firstTokenMs,
    tokensPerS: tokens / (totalMs / 1000),
    totalMs,
    msPerStepP50: percentile(0.5),
    msPerStepP95: percentile(0.95),
    forwards,
    dispatchesPerStep: passes.dispatches / passes.count,
    weightBytesPerStep: weightBytes / forwards,
  };
}

/** The ops of the forward one step event ran (none when MDLM reused its logits). */
function stepOps(model: GpuModel, ev: Pick<BatchStep, 'forward' | 'encoderRows' | 'decoderRows'>): Op[] {
  const { config, ws } = model;
  if (!ev.forward) return [];
  const kvGroups = decoderKvGroups(config, ws.maxBatch, ws.device.limits.maxStorageBufferBindingSize);
  return config.arch === 'pgm'
    ? pgmOps(config, ev.encoderRows, ev.decoderRows, kvGroups)
    : mdlmOps(config, ev.encoderRows);
}

/** One model's generation: ms summed over its steps, forwards run, their matmul + attention FLOPs, and encoder rows. */
interface Generation {
  ms: number;
  forwards: number;
  flops: number;
  encoderRows: number;
}

/**
 * One generation by each model, stepped in turns (a PGM step, an MDLM step, ...) so that both
 * see the same machine load over the same seconds: on a noisy machine, two generations timed
 * one after the other drift apart by tens of percent. Each model's time is the sum of its own
 * steps (submit, GPU work, readback and the sampler's host work). The PGM runs one step at a
 * time here; what keeping a step in flight saves is measured on its own (`overlapGain`).
 */
export async function generateInTurns(
  models: readonly GpuModel[],
  batch: number,
  nSteps: number,
  encodings: readonly Encoding[] = models.map(() => EXACT),
): Promise<Generation[]> {
  // One step at a time: a PGM step left in flight would run (and be timed) in another model's turn.
  const runs = models.map((model, i) => ({
    model,
    gen: steps(model, batch, model.config.length, nSteps, encodings[i], false),
    done: false,
    stepsRun: 0,
    ms: 0,
    forwards: 0,
    flops: 0,
    encoderRows: 0,
  }));
  for (;;) {
    const live = runs.filter((r) => !r.done);
    if (!live.length) break;
    const r = live.reduce((a, b) => (b.stepsRun < a.stepsRun ? b : a));
    const t0 = performance.now();
    const next = await r.gen.next();
    r.ms += performance.now() - t0;
    if (next.done) {
      r.done = true;
      continue;
    }
    r.stepsRun++;
    if (next.value.forward) r.forwards++;
    r.flops += forwardFlops(stepOps(r.model, next.value));
    r.encoderRows += next.value.encoderRows.reduce((a, x) => a + x, 0);
  }
  return runs.map(({ ms, forwards, flops, encoderRows }) => ({ ms, forwards, flops, encoderRows }));
}

/** Whole PGM generations with a step in flight and one step at a time, alternating; the best of `reps` each. */
async function overlapGain(
  model: GpuModel,
  nSteps: number,
  reps: number,
): Promise<{ overlapMs: number; oneAtATimeMs: number }> {
  const time = async (overlap: boolean) => {
    const t0 = performance.now();
    for await (const _ of steps(model, 1, model.config.length, nSteps, EXACT, overlap));
    return performance.now() - t0;
  };
  let best = { overlapMs: Infinity, oneAtATimeMs: Infinity };
  for (let r = 0; r < reps; r++)
    best = {
      overlapMs: Math.min(best.overlapMs, await time(true)),
      oneAtATimeMs: Math.min(best.oneAtATimeMs, await time(false)),
    };
  return best;
}

/** Run a generation up to step `target` and record that step's dispatches and their ops. */
async function recordStep(model: GpuModel, batch: number, nSteps: number, target: number) {
  const gen = steps(model, batch, model.config.length, nSteps, EXACT, false);
  try {
    for (let step = 0; ; step++) {
      const recorded: RecordedDispatch[] = [];
      if (step === target) observeDispatches((dispatch, grid) => recorded.push(record(dispatch, grid)));
      const t0 = performance.now();
      let next: IteratorResult<BatchStep>;
      try {
        next = await gen.next();
      } finally {
        observeDispatches(undefined);
      }
      const wallMs = performance.now() - t0;
      if (next.done) throw new Error(`bench: step ${target} of ${nSteps} never ran`);
      if (step < target) continue;
      const ev = next.value;
      const rows = model.config.arch === 'pgm' ? ev.decoderRows : ev.encoderRows;
      const ops = new Map([...stepOps(model, ev), sampleOp(model.config, rows)].map((o) => [o.label, o]));
      return { ev, wallMs, recorded, ops, ms: recorded.map(() => Infinity) };
    }
  } finally {
    // The model keeps this step's batch shape (dims, lengths) until its next step: replays see the same work.
    await gen.return(undefined);
  }
}

const fold = (label: string): string => label.replace(/\.\d+\./g, '.*.');

function kernelRows(
  arch: 'pgm' | 'mdlm',
  p: Awaited<ReturnType<typeof recordStep>>,
  peak: BenchResult['peak'],
): KernelRow[] {
  const total = p.ms.reduce((a, x) => a + x, 0);
  const groups = new Map<string, { cls: OpClass; calls: number; ms: number; flops: number; bytes: number }>();
  p.recorded.forEach(({ kernel, bindGroup }, i) => {
    const label = bindGroup.label;
    const op = p.ops.get(label);
    if (!op)
      throw new Error(`bench: no FLOP/byte model for dispatch "${label}" (${kernel.name}); update bench/flops.ts`);
    const name = `${kernel.name} ${fold(label)}`;
    const g = groups.get(name) ?? { cls: op.cls, calls: 0, ms: 0, flops: 0, bytes: 0 };
    g.calls++;
    g.ms += p.ms[i];
    g.flops += op.flops;
    g.bytes += op.bytes;
    groups.set(name, g);
  });
  return [...groups]
    .map(([name, g]) => {
      const gflops = g.cls === 'memory' ? null : g.flops / (g.ms * 1e6);
      const gbps = g.bytes / (g.ms * 1e6);
      return {
        arch,
        name,
        cls: g.cls,
        calls: g.calls,
        ms: g.ms,
        share: g.ms / total,
        gflops,
        gbps,
        fractionOfPeak: gflops !== null ? gflops / peak.fmaGflops : gbps / peak.bandwidthGBs,
      };
    })
    .sort((a, b) => b.ms - a.ms);
}

export async function runSuite(ctx: GpuContext, options: SuiteOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  const p = plan(options.mode);
  const start = performance.now();
  const timestamps = hasTimestamps(ctx);
  log(
    `adapter: ${ctx.adapter.vendor} ${ctx.adapter.architecture} ${ctx.adapter.description} (${options.runtime}, timestamps: ${timestamps})`,
  );

  const fmaGflops = await fmaPeak(ctx, 3);
  const bandwidthGBs = await bandwidthPeak(ctx, p.bandwidthMB, 3);
  const peak = { fmaGflops, bandwidthGBs };
  log(`peak: FMA ${fmaGflops.toFixed(2)} GFLOP/s, copy ${bandwidthGBs.toFixed(2)} GB/s`);
  const mm = await matmulPeak(ctx, p.matmulShape, 3);
  const matmul = { ...mm, peakGflops: fmaGflops, fraction: mm.bestGflops / fmaGflops };
  log(
    `matmul ${mm.shape.join('x')} (${mm.variant}): ${mm.bestGflops.toFixed(2)} GFLOP/s = ${(100 * matmul.fraction).toFixed(1)}% of FMA peak`,
  );

  const e2e: E2eResult[] = [];
  const incremental: IncrementalResult[] = [];
  const overlap: OverlapResult[] = [];
  const profile: ProfiledStep[] = [];
  const kernels: KernelRow[] = [];
  const generations: GenerationMetrics[] = [];
  for (const { shape, cases: planned, incremental: incrementalCases, generations: generationSteps } of p.shapes) {
    const name = shapeName(shape);
    // The logits buffer holds [maxBatch, L, V] floats and must fit one storage binding.
    const fits = (batch: number) => batch * shape.L * shape.V * 4 <= ctx.device.limits.maxStorageBufferBindingSize;
    for (const c of planned)
      if (!fits(c.batch)) log(`${name}: batch ${c.batch} skipped, its logits exceed maxStorageBufferBindingSize`);
    const cases = planned.filter((c) => fits(c.batch));
    if (!cases.length) continue;
    const maxBatch = Math.max(...cases.map((c) => c.batch), p.profile.L === shape.L ? p.profile.batch : 1);
    const pgmConfig = modelConfig('pgm', shape);
    const mdlmConfig = modelConfig('mdlm', shape);
    log(`${name}: loading random weights (maxBatch ${maxBatch})`);
    const pgm = await GpuModel.load(ctx, pgmConfig, randomWeights(pgmConfig, 1), { maxBatch });
    const mdlm = await GpuModel.load(ctx, mdlmConfig, randomWeights(mdlmConfig, 2), { maxBatch });
    try {
      await generateInTurns([pgm, mdlm], 1, 2); // warm-up: first submits, lazy driver work
      for (const { steps: nSteps, batch } of cases) {
        let best: { pgm?: Generation; mdlm?: Generation } = {};
        for (let r = 0; r < p.reps; r++) {
          const [a, b] = await generateInTurns([pgm, mdlm], batch, nSteps);
          best = {
            pgm: !best.pgm || a.ms < best.pgm.ms ? a : best.pgm,
            mdlm: !best.mdlm || b.ms < best.mdlm.ms ? b : best.mdlm,
          };
        }
        const a = best.pgm!;
        const b = best.mdlm!;
        const tokens = batch * (shape.L - 1);
        const row: E2eResult = {
          shape: name,
          L: shape.L,
          steps: nSteps,
          batch,
          pgmMs: a.ms,
          mdlmMs: b.ms,
          ratio: b.ms / a.ms,
          flopRatio: b.flops / a.flops,
          pgmTokensPerS: tokens / (a.ms / 1000),
          mdlmTokensPerS: tokens / (b.ms / 1000),
          pgmForwards: a.forwards,
          mdlmForwards: b.forwards,
          pgmGflop: a.flops / 1e9,
          mdlmGflop: b.flops / 1e9,
          pgmGflops: a.flops / (a.ms * 1e6),
          mdlmGflops: b.flops / (b.ms * 1e6),
        };
        e2e.push(row);
        log(
          `  L${shape.L} steps ${nSteps} batch ${batch}: PGM ${a.ms.toFixed(0)} ms, MDLM ${b.ms.toFixed(0)} ms (${b.forwards} forwards), ratio ${row.ratio.toFixed(2)} vs FLOP ratio ${row.flopRatio.toFixed(2)}`,
        );
      }
      for (const nSteps of [...new Set(cases.filter((c) => c.batch === 1).map((c) => c.steps))]) {
        const g = await overlapGain(pgm, nSteps, 3);
        overlap.push({ shape: name, L: shape.L, steps: nSteps, ...g, speedup: g.oneAtATimeMs / g.overlapMs });
        log(
          `  L${shape.L} steps ${nSteps} PGM with a step in flight: ${g.overlapMs.toFixed(0)} ms, one at a time ${g.oneAtATimeMs.toFixed(0)} ms, ${(g.oneAtATimeMs / g.overlapMs).toFixed(2)}x`,
        );
      }
      if (incrementalCases.length || generationSteps) {
        // A second PGM with the same weights holds the KV set, so both generations step in turns.
        const kv = await GpuModel.load(ctx, pgmConfig, randomWeights(pgmConfig, 1), { maxBatch: 1 });
        try {
          if (generationSteps) {
            const runs = [
              ['PGM exact', pgm, EXACT],
              [`PGM KV set (${KV_SET.encoder})`, kv, KV_SET],
              ['MDLM', mdlm, EXACT],
            ] as const;
            const best = new Map<string, GenerationMetrics>();
            for (let r = 0; r < Math.max(2, p.reps); r++) {
              for (const [model, gpuModel, encoding] of runs) {
                const g = {
                  shape: name,
                  L: shape.L,
                  steps: generationSteps,
                  model,
                  ...(await generation(gpuModel, model, generationSteps, encoding)),
                };
                if (!best.has(model) || g.totalMs < best.get(model)!.totalMs) best.set(model, g);
              }
            }
            for (const g of best.values()) {
              generations.push(g);
              log(
                `  L${shape.L} steps ${g.steps} ${g.model}: first token ${g.firstTokenMs.toFixed(0)} ms, ${g.tokensPerS.toFixed(1)} tokens/s, ms per step p50 ${g.msPerStepP50.toFixed(1)} p95 ${g.msPerStepP95.toFixed(1)}, ${g.dispatchesPerStep.toFixed(1)} dispatches and ${(g.weightBytesPerStep / 1e6).toFixed(2)} MB of weights per step`,
              );
            }
          }
          await generateInTurns([pgm, kv], 1, 2, [EXACT, { encoder: 'incremental', refresh: 0 }]);
          for (const { steps: nSteps, refresh, encoder = 'incremental' } of incrementalCases) {
            let best: Generation[] | undefined;
            for (let r = 0; r < p.reps; r++) {
              const run = await generateInTurns([pgm, kv], 1, nSteps, [EXACT, { encoder, refresh }]);
              best = best ? best.map((g, i) => (run[i].ms < g.ms ? run[i] : g)) : run;
            }
            const [a, b] = best!;
            const row: IncrementalResult = {
              shape: name,
              L: shape.L,
              steps: nSteps,
              encoder,
              refresh: refresh || null,
              exactMs: a.ms,
              incrementalMs: b.ms,
              speedup: a.ms / b.ms,
              exactEncoderRows: a.encoderRows,
              incrementalEncoderRows: b.encoderRows,
            };
            incremental.push(row);
            log(
              `  L${shape.L} steps ${nSteps} ${encoder} (refresh ${refresh || 'never'}): exact ${a.ms.toFixed(0)} ms, incremental ${b.ms.toFixed(0)} ms, ${row.speedup.toFixed(2)}x (encoder rows ${a.encoderRows} vs ${b.encoderRows})`,
            );
          }
        } finally {
          kv.dispose();
        }
      }
      if (p.profile.L === shape.L) {
        const { steps: nSteps, batch } = p.profile;
        const runs = [
          await recordStep(pgm, batch, nSteps, Math.floor(nSteps / 2)),
          await recordStep(mdlm, batch, nSteps, 0),
        ];
        // PGM and MDLM replays alternate, so both see the same background load; best of each kept.
        for (let r = 0; r < (timestamps ? 3 : 1); r++) {
          for (const run of runs) {
            const ms = await timeDispatches(ctx, run.recorded, 1);
            run.ms = run.ms.map((t, i) => Math.min(t, ms[i]));
          }
        }
        for (const [i, run] of runs.entries()) {
          const arch = i === 0 ? 'pgm' : 'mdlm';
          const gpuMs = run.ms.reduce((x, y) => x + y, 0);
          profile.push({
            arch,
            shape: name,
            steps: nSteps,
            batch,
            step: run.ev.step,
            clean: run.ev.encoderRows,
            queries: arch === 'pgm' ? run.ev.decoderRows : [],
            wallMs: run.wallMs,
            gpuMs,
            dispatches: run.recorded.length,
          });
          kernels.push(...kernelRows(arch, run, peak));
          log(
            `  profiled ${arch} step ${run.ev.step}: ${run.recorded.length} dispatches, GPU ${gpuMs.toFixed(1)} ms, wall ${run.wallMs.toFixed(1)} ms`,
          );
        }
      }
    } finally {
      pgm.dispose();
      mdlm.dispose();
    }
  }
  const peer = options.peer ? await options.peer(ctx, log) : null;
  // Measured again at the end, keeping the best: a busy machine lowers one measurement.
  peak.fmaGflops = Math.max(peak.fmaGflops, await fmaPeak(ctx, 3));
  peak.bandwidthGBs = Math.max(peak.bandwidthGBs, await bandwidthPeak(ctx, p.bandwidthMB, 3));
  log(`peak again: FMA ${peak.fmaGflops.toFixed(2)} GFLOP/s, copy ${peak.bandwidthGBs.toFixed(2)} GB/s (best of both)`);
  for (const k of kernels)
    k.fractionOfPeak = k.gflops !== null ? k.gflops / peak.fmaGflops : (k.gbps ?? 0) / peak.bandwidthGBs;
  Object.assign(matmul, { peakGflops: peak.fmaGflops, fraction: matmul.bestGflops / peak.fmaGflops });
  return {
    adapter: { ...ctx.adapter, runtime: options.runtime, timestamps },
    date: new Date().toISOString(),
    mode: p.mode,
    e2e,
    incremental,
    overlap,
    generations,
    peer,
    peak,
    matmul,
    profile,
    kernels,
    totalMs: performance.now() - start,
  };
}
