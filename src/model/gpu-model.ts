import { fail } from '../errors.js';
import type { GpuContext } from '../gpu/context.js';
import { encodeDispatches, KernelCache, type Dispatch } from '../gpu/kernel.js';
import { GpuMemory, readBuffer } from '../gpu/memory.js';
import { canNap } from '../gpu/nap.js';
import { gpuTensor } from '../gpu/tensor.js';
import { sinusTable } from '../kernels/group-swap.js';
import { createSampler, type SampleSettings, type Sampler } from '../kernels/sample.js';
import type { PlanOptions } from '../kernels/plan.js';
import { kernelPlan } from '../tuning/tuning.js';
import { createWorkspace, setBatchShape, type Workspace } from '../kernels/workspace.js';
import { exactSide, recordPass, type Activations, type ForwardContext, type RecordedPass } from './blocks.js';
import { loadConstants } from './constants.js';
import { headDim, type ModelConfig } from '../weights/config.js';
import { decoderKvGroups } from './fusion.js';
import { adaptiveSide, incrementalSide, kvSet, REENCODE_PER_FRESH, type KvSet } from './kv-set.js';
import { validateMdlmBatch, validatePgmBatch, type MdlmSequence, type PgmSequence } from './inputs.js';
import { mdlmForward } from './mdlm.js';
import { pgmForward } from './pgm.js';
import { GpuWeights, WEIGHT_STORAGES, type WeightStorage } from './gpu-weights.js';
import type { Weights } from '../weights/host-tensor.js';

/**
 * `matmul`, `attention`: which kernel variants run; 'auto' (default) measures them once per
 * adapter at load and remembers the fastest, a variant name forces it (tests, benches).
 */
export interface GpuModelOptions extends PlanOptions {
  /** Largest batch the buffers are sized for (default: GPU_MODEL_DEFAULTS). */
  maxBatch?: number;
  /**
   * How the matmul weights (every 2-D `*.weight`) and the embedding are stored on the GPU, the
   * kernels widening f16 to f32 as they read it: 'auto' (default) keeps the tensors that arrive
   * as f16 in f16 (exact, half the memory and weight traffic); 'f32' widens them at load; 'f16'
   * also rounds f32 tensors to f16 (lossy). Other tensors are f32, and tensors only the host
   * reads (the adaLN and timestep weights) are not uploaded.
   */
  weightStorage?: WeightStorage;
  /**
   * Rows of logits per sequence held at a time: the output layer and the sampler (or the
   * readback of `pgmLogits` / `mdlmLogits`) run over windows of this many query rows (MDLM:
   * positions), one after another. Default: what fits in 64 MiB for `maxBatch` sequences (at
   * least 1, at most L). At most what one storage binding holds.
   */
  logitRows?: number;
  /**
   * Called when the weights are on the GPU with the time spent uploading them (not the time
   * spent waiting for them: a model directory's shards are read as they are uploaded, and report
   * their own download and verify events), then when the rest is done (kernel plan, pipelines).
   */
  onPhase?: (phase: 'upload' | 'compile', ms: number) => void;
}

export { WEIGHT_STORAGES, type WeightStorage };

/** What `GpuModel.load` takes for the options not given; createEngine's defaults for the same options (ENGINE_OPTIONS). */
export const GPU_MODEL_DEFAULTS = { maxBatch: 4, weightStorage: 'auto' } as const satisfies GpuModelOptions;

/** The default logits window: at most this many bytes (for maxBatch sequences). */
const LOGITS_BYTES = 64 * 2 ** 20;

/** Rows of logits per sequence held at a time (see GpuModelOptions.logitRows). */
function logitRowsFor(device: GPUDevice, config: ModelConfig, maxBatch: number, asked: number | undefined): number {
  const rowBytes = maxBatch * config.vocabSize * 4;
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  const fit = Math.floor(limit / rowBytes);
  if (fit < 1)
    fail(
      'option',
      `maxBatch ${maxBatch}: a row of ${config.vocabSize} logits for each sequence takes ${rowBytes} bytes, over this device's maxStorageBufferBindingSize (${limit}); use a smaller maxBatch`,
    );
  if (asked === undefined)
    return Math.min(config.length, Math.max(1, Math.min(fit, Math.floor(LOGITS_BYTES / rowBytes))));
  if (!Number.isInteger(asked) || asked < 1) fail('option', `logitRows must be a positive integer, got ${asked}`);
  if (asked > fit)
    fail(
      'option',
      `logitRows ${asked}: ${asked} rows of ${config.vocabSize} logits for ${maxBatch} sequences take ${asked * rowBytes} bytes, over this device's maxStorageBufferBindingSize (${limit}); at most ${fit}`,
    );
  return Math.min(asked, config.length);
}

/**
 * Which forward pass a step runs: `exact` encodes every clean token; `incremental` (PGM) only
 * the fresh ones (the last `fresh[b]` of the clean set, see setLengths) against the KV set of
 * the rows before them; `adaptive` those and the kept rows the GPU picks as stale (see
 * startStep's `staleness`); `none` reuses the previous step's logits.
 */
export type ForwardPass = 'exact' | 'incremental' | 'adaptive' | 'none';

/** What a sampling step drew: token and probability per row, [batch, rowsPerSeq]; token -1 = not revealed. */
export interface DrawnTokens {
  tokens: Int32Array;
  probs: Float32Array;
  rowsPerSeq: number;
  /** An adaptive pass: the kept rows it re-encoded, per sequence. */
  reencoded?: Int32Array;
}

/** The adaptive pass, built on first use: its dispatches and where it reports its picks. */
interface AdaptivePass {
  pass: RecordedPass;
  /** u32 [maxBatch]: kept rows re-encoded per sequence. */
  report: GPUBuffer;
  /** Uniform: the pick's threshold. */
  threshold: GPUBuffer;
}

/** One compute pass of `dispatches` at their current grids. */
function encodePass(encoder: GPUCommandEncoder, label: string, dispatches: readonly Dispatch[]): void {
  const pass = encoder.beginComputePass({ label });
  encodeDispatches(pass, dispatches);
  pass.end();
}

/**
 * A model resident on the GPU: weights uploaded once, activation buffers sized once for
 * [maxBatch, L], pipelines and bind groups built once; a forward pass is one command
 * encoder and nothing is read back between layers.
 *
 * A step is driven in a fixed order, which the model enforces (a PgmError('call-order')
 * otherwise):
 * 1. its inputs (`writeClean`, `writeQueries`, `writeSeeds`) and `setLengths`, the counts of
 *    what was written. The queue runs these writes before the step's submit, whatever their
 *    order; the lengths hold for later steps until set again (an MDLM sets them once), but a
 *    first step needs them;
 * 2. `startStep` or `sampleStep`, which encodes the step and submits it. While it has not
 *    resolved, no other call is taken (a write would land in the step being built, a new
 *    length would change its grids); once it resolves, the next step's inputs may be written,
 *    and the queue runs them after this step.
 * A pass `'none'` reuses the logits of a forward pass over the lengths set last, so one must
 * have run since. `pgmLogits` and `mdlmLogits` do both.
 */
export class GpuModel {
  private constructor(
    readonly config: ModelConfig,
    readonly ws: Workspace,
    readonly act: Activations,
    /** Parameters the model was given (host and GPU). */
    readonly parameters: number,
    private readonly forward: RecordedPass,
    private readonly sampler: Sampler,
    private readonly seeds: GPUBuffer,
    private readonly drawn: GPUBuffer,
    /** The incremental and adaptive passes, built on first use (they allocate the KV set). */
    private readonly buildIncremental: () => Promise<RecordedPass>,
    private readonly buildAdaptive: () => Promise<AdaptivePass>,
  ) {}

  private incremental: Promise<RecordedPass> | undefined;
  private adaptive: Promise<AdaptivePass> | undefined;
  /** Per sequence: rows the KV set holds (0 after an exact pass, which overwrites E). */
  private kvRows: number[] = [];
  /** Per sequence: rows whose staleness statistic adaptive passes kept (0 once another pass ran). */
  private adaptiveRows: number[] = [];
  /** The lengths of the next pass, as setLengths was given them; undefined before the first. */
  private lengths:
    { clean: readonly number[]; queries: readonly number[]; fresh?: readonly number[]; adaptive?: boolean } | undefined;
  /** A step is being encoded and submitted: no other call is taken (see the class). */
  private starting = false;
  /** A forward pass ran over the lengths set last: the logits a pass 'none' reuses. */
  private logitsOfLengths = false;
  private rowsRun: { encoderRows: number[]; decoderRows: number[] } = { encoderRows: [], decoderRows: [] };

  /**
   * Upload `weights` (tensor by tensor as they arrive: a model directory is read one shard at a
   * time, and no tensor is copied on the host but the small ones only the host reads) and build
   * the forward passes and the sampler.
   */
  static async load(
    ctx: GpuContext,
    config: ModelConfig,
    weights: Weights,
    options: GpuModelOptions = {},
  ): Promise<GpuModel> {
    const maxBatch = options.maxBatch ?? GPU_MODEL_DEFAULTS.maxBatch;
    if (!Number.isInteger(maxBatch) || maxBatch < 1)
      fail('option', `maxBatch must be a positive integer, got ${maxBatch}`);
    const storage = options.weightStorage ?? GPU_MODEL_DEFAULTS.weightStorage;
    if (!WEIGHT_STORAGES.includes(storage))
      fail('option', `weightStorage must be one of ${WEIGHT_STORAGES.join(', ')}; got "${storage}"`);
    const logitRows = logitRowsFor(ctx.device, config, maxBatch, options.logitRows);
    const memory = new GpuMemory(ctx.device, ctx.napWhileWaiting ?? canNap);
    const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
    try {
      const L = config.length;
      const D = config.hiddenSize;
      const V = config.vocabSize;
      const kvGroups =
        config.arch === 'pgm' ? decoderKvGroups(config, maxBatch, ctx.device.limits.maxStorageBufferBindingSize) : [];
      const store = new GpuWeights(memory, storage, config, kvGroups);
      let uploadMs = 0;
      for await (const [name, tensor] of weights) {
        const uploading = performance.now();
        store.add(name, tensor);
        uploadMs += performance.now() - uploading;
      }
      store.finish();
      options.onPhase?.('upload', uploadMs);
      const compiling = performance.now();
      const ws = createWorkspace(memory, KernelCache.of(ctx.device), L, maxBatch);
      const decoderKv = kvGroups.map(([first, last]) => 2 * D * (last - first + 1));
      ws.plan = await kernelPlan(
        ctx,
        ws.kernels,
        {
          D,
          F: config.mlpDim,
          V,
          L,
          nHeads: config.nHeads,
          headDim: headDim(config),
          halfWeights: store.halfMatmuls,
          decoderKv,
        },
        options,
      );

      const fits =
        maxBatch > 1
          ? `use a smaller maxBatch than ${maxBatch}`
          : `one sequence of the model's ${L} rows does not fit this device`;
      const activation = (name: string, width: number) =>
        gpuTensor(name, memory.create(name, maxBatch * L * width * 4, STORAGE, { hint: fits }), [maxBatch, L, width]);
      const indices = (name: string) =>
        gpuTensor(name, memory.create(name, maxBatch * L * 4, STORAGE, { hint: fits }), [maxBatch, L], 'u32');
      const act: Activations = {
        cleanTokens: indices('cleanTokens'),
        cleanPositions: indices('cleanPositions'),
        queryPositions: indices('queryPositions'),
        x: activation('x', D),
        y: activation('y', D),
        q: activation('q', D),
        wide: activation('wide', 3 * D),
        attn: activation('attn', D),
        hidden: activation('hidden', Math.max(config.mlpDim, 4 * D)),
        decoderKv: decoderKv.map((width, g) => activation(`decoder kv ${g}`, width)),
        stat: gpuTensor('stat', memory.create('stat', maxBatch * D * 4, STORAGE), [maxBatch, D]),
        logits: gpuTensor('logits', memory.create('logits', maxBatch * logitRows * V * 4, STORAGE), [
          maxBatch,
          logitRows,
          V,
        ]),
      };
      const prefixes =
        config.arch === 'pgm'
          ? [
              ...Array.from({ length: config.encoderBlocks }, (_, i) => `encoder.blocks.${i}`),
              ...Array.from({ length: config.decoderBlocks }, (_, i) => `decoder.layers.${i}`),
            ]
          : Array.from({ length: config.nBlocks }, (_, i) => `blocks.${i}`);
      const blocks = (name: string) => store.blocks(name);
      const {
        tensor: constants,
        mod,
        ropeOffset,
        normColumns,
      } = await loadConstants(memory, ws.kernels, config, store.host, prefixes, store.names(), blocks);
      const shared = {
        ws,
        config,
        param: (name: string) => store.get(name),
        blocks,
        mod,
        constants,
        ropeOffset,
        normColumns,
        act,
      };
      const sinus =
        config.arch === 'pgm' ? gpuTensor('sinus', memory.upload('sinus', sinusTable(L, D)), [L, D]) : undefined;
      const build = (clean: ForwardContext['clean']): Promise<RecordedPass> =>
        recordPass((emit) => {
          const f: ForwardContext = { ...shared, clean, emit };
          if (sinus) pgmForward(f, sinus);
          else mdlmForward(f);
        });
      const forward = await build(exactSide(act));
      const rows = maxBatch * L;
      const seeds = memory.create('seeds', 4 * maxBatch, STORAGE);
      // The draws, then room for an adaptive pass's report.
      const drawn = memory.create('drawn', 8 * rows + 4 * maxBatch, STORAGE, { hint: fits });
      const sampler = await createSampler(ws, {
        arch: config.arch,
        maskId: config.maskId,
        logits: act.logits,
        windows: forward.windows.length,
        seeds: gpuTensor('seeds', seeds, [maxBatch], 'u32'),
        queryPositions: act.queryPositions,
        cleanTokens: act.cleanTokens,
        cleanPositions: act.cleanPositions,
        drawn: gpuTensor('drawn', drawn, [rows, 2], 'u32'),
      });
      let kv: KvSet | undefined;
      const kvSetOnce = () => (kv ??= kvSet(activation, config));
      const buildIncremental = () => build(incrementalSide(kvSetOnce()));
      const buildAdaptive = async (): Promise<AdaptivePass> => {
        const state = {
          lse: activation('staleness lse', 2 * config.nHeads),
          unseen: activation('unseen shares', 1),
          report: memory.create('reencoded counts', 4 * maxBatch, STORAGE),
          threshold: memory.create('staleness threshold', 16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
        };
        return {
          pass: await build(adaptiveSide(kvSetOnce(), state, config)),
          report: state.report,
          threshold: state.threshold,
        };
      };
      options.onPhase?.('compile', performance.now() - compiling);
      return new GpuModel(
        config,
        ws,
        act,
        store.parameters,
        forward,
        sampler,
        seeds,
        drawn,
        buildIncremental,
        buildAdaptive,
      );
    } catch (e) {
      memory.releaseAll();
      throw e;
    }
  }

  /** Bytes of GPU memory this model holds. */
  get gpuBytes(): number {
    return this.ws.memory.bytes;
  }

  /** Overwrite clean tokens and positions of sequence b from row `at` on. */
  writeClean(b: number, at: number, tokens: ArrayLike<number>, positions: ArrayLike<number>): void {
    this.expectIdle('writeClean');
    const offset = (b * this.ws.seqStride + at) * 4;
    this.ws.device.queue.writeBuffer(
      this.act.cleanTokens.buffer,
      offset,
      Uint32Array.from(tokens as ArrayLike<number>),
    );
    this.ws.device.queue.writeBuffer(
      this.act.cleanPositions.buffer,
      offset,
      Uint32Array.from(positions as ArrayLike<number>),
    );
  }

  /** This step's query positions of sequence b. */
  writeQueries(b: number, positions: ArrayLike<number>): void {
    this.expectIdle('writeQueries');
    if (positions.length)
      this.ws.device.queue.writeBuffer(
        this.act.queryPositions.buffer,
        b * this.ws.seqStride * 4,
        Uint32Array.from(positions),
      );
  }

  /** One RNG seed per sequence of the batch. */
  writeSeeds(seeds: readonly number[]): void {
    this.expectIdle('writeSeeds');
    this.ws.device.queue.writeBuffer(
      this.seeds,
      0,
      Uint32Array.from(seeds, (s) => s >>> 0),
    );
  }

  /**
   * Per-sequence clean and query counts for the next step, and for an incremental pass the
   * fresh counts: sequence b encodes its last fresh[b] clean tokens; the KV set must hold the
   * clean[b] - fresh[b] rows before them (fresh[b] = clean[b]: a refresh, exact). `adaptive`:
   * the pass is an adaptive one, which may add up to REENCODE_PER_FRESH x fresh[b] kept rows.
   */
  setLengths(clean: readonly number[], queries: readonly number[], fresh?: readonly number[], adaptive = false): void {
    this.expectIdle('setLengths');
    if (clean.length > this.ws.maxBatch)
      fail('shape', `batch of ${clean.length} exceeds this model's maxBatch ${this.ws.maxBatch}`);
    fresh?.forEach((m, b) => {
      const cached = this.kvRows[b] ?? 0;
      if (!Number.isInteger(m) || m < 0 || m > clean[b])
        fail('shape', `sequence ${b}: ${m} fresh rows, but ${clean[b]} clean tokens`);
      if (clean[b] - m > cached)
        fail(
          'shape',
          `sequence ${b}: an incremental pass over the last ${m} of ${clean[b]} clean tokens needs ${clean[b] - m} cached rows; the KV set holds ${cached}`,
        );
      if (adaptive && clean[b] - m > (this.adaptiveRows[b] ?? 0)) {
        fail(
          'shape',
          `sequence ${b}: an adaptive pass needs the statistic of the ${clean[b] - m} kept rows, which only adaptive passes keep; start the set with every clean token fresh`,
        );
      }
    });
    if (adaptive && !fresh) fail('shape', 'an adaptive pass needs fresh counts');
    this.lengths = { clean: [...clean], queries: [...queries], fresh: fresh && [...fresh], adaptive };
    this.logitsOfLengths = false;
    const reencodable = adaptive ? fresh!.map((m, b) => Math.min(clean[b] - m, REENCODE_PER_FRESH * m)) : [];
    setBatchShape(this.ws, clean, queries, fresh, reencodable);
  }

  /** Rows the last forward pass ran through the encoder and the decoder, per sequence (MDLM: decoder 0). */
  get lastPass(): { readonly encoderRows: readonly number[]; readonly decoderRows: readonly number[] } {
    return this.rowsRun;
  }

  /** Rows the KV set holds for each sequence (after incremental passes; 0 after an exact one). */
  get kvSetRows(): readonly number[] {
    return this.kvRows;
  }

  /** Fail while a step is being started: `call` would change the step being built (the call order of the class doc). */
  private expectIdle(call: string): void {
    if (this.starting)
      fail(
        'call-order',
        `GpuModel.${call} while a step is being started: await startStep (or sampleStep, pgmLogits, mdlmLogits) first`,
      );
  }

  /** Run `work`, the encoding and submission of a step, taking no other call until it settles. */
  private async start<T>(call: string, work: () => Promise<T>): Promise<T> {
    this.expectIdle(call);
    this.starting = true;
    try {
      return await work();
    } finally {
      this.starting = false;
    }
  }

  /**
   * The dispatches of a forward pass over the lengths set last; its effect on the KV set's
   * bookkeeping. An adaptive pass's encoder rows count the joined ones; the kept rows it
   * re-encodes come with its readback (DrawnTokens.reencoded).
   */
  private async passDispatches(kind: ForwardPass, staleness?: number): Promise<RecordedPass> {
    if (!this.lengths)
      fail(
        'call-order',
        'GpuModel: a step before setLengths (a step needs its inputs, then their counts: setLengths, then startStep)',
      );
    if (kind === 'none') {
      if (!this.logitsOfLengths)
        fail(
          'call-order',
          "GpuModel: a pass 'none' reuses the logits of a forward pass over the lengths set last, and none has run since setLengths",
        );
      // The logits of the previous pass where one window holds them; else its output layer
      // again, window by window, from the stream rows that pass left (their LayerNorm is the
      // output layer's prologue).
      const { windows } = this.forward;
      return { dispatches: [], windows: windows.length === 1 ? [[]] : windows };
    }
    const { clean, queries, fresh, adaptive } = this.lengths;
    const decoderRows = this.config.arch === 'pgm' ? [...queries] : clean.map(() => 0);
    if (kind === 'exact') {
      this.kvRows = [];
      this.adaptiveRows = [];
      this.rowsRun = { encoderRows: [...clean], decoderRows };
      this.logitsOfLengths = true;
      return this.forward;
    }
    if (this.config.arch !== 'pgm') fail('architecture', `an ${kind} pass needs a PGM model; this one is an MDLM`);
    if (!fresh) fail('shape', `an ${kind} pass needs fresh counts: call setLengths(clean, queries, fresh)`);
    if (adaptive !== (kind === 'adaptive'))
      fail('shape', `an ${kind} pass needs setLengths(clean, queries, fresh, ${!adaptive})`);
    let pass: RecordedPass;
    if (kind === 'adaptive') {
      if (!(typeof staleness === 'number' && staleness >= 0 && staleness <= 1))
        fail('option', `an adaptive pass needs a staleness threshold in [0, 1], got ${staleness}`);
      this.adaptive ??= this.buildAdaptive().catch((e) => {
        this.adaptive = undefined;
        throw e;
      });
      const adaptivePass = await this.adaptive;
      this.ws.device.queue.writeBuffer(adaptivePass.threshold, 0, new Float32Array([staleness, 0, 0, 0]));
      pass = adaptivePass.pass;
    } else {
      this.incremental ??= this.buildIncremental().catch((e) => {
        this.incremental = undefined;
        throw e;
      });
      pass = await this.incremental;
    }
    this.kvRows = [...clean];
    this.adaptiveRows = kind === 'adaptive' ? [...clean] : [];
    this.rowsRun = { encoderRows: [...fresh], decoderRows };
    this.logitsOfLengths = true;
    return pass;
  }

  /**
   * One sampling step in one submit: the forward pass (`pass`: exact, incremental, or none,
   * which reuses the logits of the previous step), the sampler, and the readback of the drawn
   * tokens and their probabilities, [batch, maxRows] each; token -1 = not revealed.
   */
  async sampleStep(settings: SampleSettings, pass: ForwardPass = 'exact', staleness?: number): Promise<DrawnTokens> {
    return (await this.startStep(settings, pass, staleness)).result;
  }

  /**
   * sampleStep without waiting for it: resolves once the step is submitted; `result` resolves
   * with what it drew. Writes and submits made meanwhile run after it (the queue keeps their
   * order), so a sampler whose next step does not depend on the draws keeps one in flight.
   * `staleness` (an adaptive pass): the threshold of its pick, in [0, 1].
   */
  startStep(
    settings: SampleSettings,
    pass: ForwardPass = 'exact',
    staleness?: number,
  ): Promise<{ result: Promise<DrawnTokens> }> {
    return this.start('startStep', () => this.submitStep(settings, pass, staleness));
  }

  /** startStep's work, taking no other call until it settles. */
  private async submitStep(
    settings: SampleSettings,
    pass: ForwardPass,
    staleness?: number,
  ): Promise<{ result: Promise<DrawnTokens> }> {
    const { dispatches, windows } = await this.passDispatches(pass, staleness);
    this.sampler.set(settings);
    const encoder = this.ws.device.createCommandEncoder({ label: 'sampling step' });
    // Each window's logits are sampled before the next window overwrites them.
    encodePass(encoder, 'sampling step', [
      ...dispatches,
      ...windows.flatMap((w, i) => [...w, this.sampler.windows[i]]),
    ]);
    const rowsPerSeq = this.config.arch === 'pgm' ? this.ws.shape.maxQuery : this.ws.shape.maxClean;
    const { batch } = this.ws.shape;
    const n = batch * rowsPerSeq;
    // An adaptive pass's picks ride in the same readback, after the draws.
    const report = pass === 'adaptive' ? (await this.adaptive!).report : undefined;
    if (report) encoder.copyBufferToBuffer(report, 0, this.drawn, 8 * n, 4 * batch);
    const bytes = 8 * n + (report ? 4 * batch : 0);
    // readBuffer submits before its first await: the step is queued when this returns.
    const result = readBuffer(this.ws.memory, this.drawn, Math.max(8, bytes), encoder).then((pairs) => {
      const all = new Int32Array(pairs, 0, 2 * n);
      const tokens = new Int32Array(n);
      const probs = new Float32Array(n);
      const probBits = new Int32Array(probs.buffer);
      for (let i = 0; i < n; i++) {
        tokens[i] = all[2 * i];
        probBits[i] = all[2 * i + 1];
      }
      return { tokens, probs, rowsPerSeq, ...(report && { reencoded: new Int32Array(pairs.slice(8 * n, bytes)) }) };
    });
    // A step left in flight by a generation that stopped is nobody's error.
    result.catch(() => undefined);
    return { result };
  }

  /** Write a batch into the token, position and length buffers (padding per sequence). */
  private writeBatch(
    call: string,
    tokens: ArrayLike<number>[],
    positions: ArrayLike<number>[],
    queries: ArrayLike<number>[],
    fresh?: readonly number[],
    adaptive = false,
  ): void {
    this.expectIdle(call);
    const { ws, act } = this;
    const L = ws.seqStride;
    if (tokens.length > ws.maxBatch)
      fail('shape', `batch of ${tokens.length} exceeds this model's maxBatch ${ws.maxBatch}`);
    const put = (buffer: GPUBuffer, rows: ArrayLike<number>[]) => {
      const data = new Uint32Array(rows.length * L);
      rows.forEach((r, b) => data.set(Array.from(r), b * L));
      ws.device.queue.writeBuffer(buffer, 0, data);
    };
    put(act.cleanTokens.buffer, tokens);
    put(act.cleanPositions.buffer, positions);
    put(act.queryPositions.buffer, queries);
    this.setLengths(
      tokens.map((t) => t.length),
      queries.map((q) => q.length),
      fresh,
      adaptive,
    );
  }

  /**
   * PGM logits for a padded batch: [batch, maxQueries, V], rows of padded queries are 0.
   * `fresh` (per sequence): an incremental pass that encodes only the last fresh[b] clean
   * tokens, against the KV set the previous passes left (which must hold the rows before them,
   * in this order); without it, the exact pass. `staleness` with `fresh`: an adaptive pass at
   * that threshold (the rows it re-encoded are in lastPass.encoderRows when this resolves).
   */
  async pgmLogits(
    sequences: readonly PgmSequence[],
    options: { fresh?: readonly number[]; staleness?: number } = {},
  ): Promise<Float32Array> {
    if (this.config.arch !== 'pgm') fail('architecture', 'pgmLogits needs a PGM model; this one is an MDLM');
    const shape = validatePgmBatch(this.config, sequences);
    if (options.fresh && options.fresh.length !== sequences.length)
      fail('shape', `${options.fresh.length} fresh counts for ${sequences.length} sequences`);
    const adaptive = options.staleness !== undefined;
    this.writeBatch(
      'pgmLogits',
      sequences.map((s) => s.tokens),
      sequences.map((s) => s.positions),
      sequences.map((s) => s.queries),
      options.fresh,
      adaptive,
    );
    const logits = await this.start('pgmLogits', () =>
      this.run(shape.maxQueries, adaptive ? 'adaptive' : options.fresh ? 'incremental' : 'exact', options.staleness),
    );
    const V = this.config.vocabSize;
    shape.queryLengths.forEach((m, b) =>
      logits.fill(0, (b * shape.maxQueries + m) * V, (b + 1) * shape.maxQueries * V),
    );
    return logits;
  }

  /** MDLM logits for sequences of equal length n: [batch, n, V]. */
  async mdlmLogits(sequences: readonly MdlmSequence[]): Promise<Float32Array> {
    if (this.config.arch !== 'mdlm') fail('architecture', 'mdlmLogits needs an MDLM model; this one is a PGM');
    const n = validateMdlmBatch(this.config, sequences);
    const positions = Array.from({ length: n }, (_, i) => i);
    this.writeBatch(
      'mdlmLogits',
      sequences.map((s) => s.tokens),
      sequences.map(() => positions),
      [],
    );
    return this.start('mdlmLogits', () => this.run(n, 'exact'));
  }

  /**
   * The forward pass and its logits, `rowsPerSeq` rows of each sequence: [batch, rowsPerSeq, V].
   * One submit and readback per window of logits rows, the forward pass in the first (adaptive:
   * then its picks).
   */
  private async run(rowsPerSeq: number, kind: ForwardPass, staleness?: number): Promise<Float32Array> {
    const { dispatches, windows } = await this.passDispatches(kind, staleness);
    const V = this.config.vocabSize;
    const R = this.act.logits.shape[1];
    const batch = this.ws.shape.batch;
    const out = new Float32Array(batch * rowsPerSeq * V);
    for (let w = 0; w * R < rowsPerSeq; w++) {
      const encoder = this.ws.device.createCommandEncoder({ label: 'forward' });
      encodePass(encoder, `${this.config.arch} forward`, [...(w === 0 ? dispatches : []), ...windows[w]]);
      const rows = Math.min(R, rowsPerSeq - w * R);
      const logits = new Float32Array(
        await readBuffer(this.ws.memory, this.act.logits.buffer, ((batch - 1) * R + rows) * V * 4, encoder),
      );
      for (let b = 0; b < batch; b++)
        out.set(logits.subarray(b * R * V, (b * R + rows) * V), (b * rowsPerSeq + w * R) * V);
    }
    if (kind === 'adaptive') {
      const reencoded = new Int32Array(await readBuffer(this.ws.memory, (await this.adaptive!).report, 4 * batch));
      this.rowsRun.encoderRows = this.rowsRun.encoderRows.map((m, b) => m + reencoded[b]);
    }
    return out;
  }

  /** Free every GPU buffer this model holds. */
  dispose(): void {
    this.ws.memory.releaseAll();
  }
}
