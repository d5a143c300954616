import { PgmError, brief, fail } from './errors.js';
import {
  importCheckpoint as convertIntoStore,
  isLocalModel,
  loadLocalModel,
  type ImportedModel,
} from './convert/import.js';
import { requestGpu, type AdapterSummary, type GpuContext } from './gpu/context.js';
import { releaseAtExit } from './gpu/release.js';
import type { ModelConfig } from './weights/config.js';
import { GpuModel } from './model/gpu-model.js';
import { cacheStore } from './weights/cache.js';
import { abortedError, checkAborted } from './weights/fetch.js';
import {
  loadModelFromManifest,
  loadModelFromUrl,
  loadPackagedModel,
  type LoadedModel,
  type LoadOptions,
  type LoadPhase,
} from './weights/load.js';
import { Vocabulary } from './text/vocab.js';
import {
  checkBatchOptionTypes,
  checkEngineOptionTypes,
  ENGINE_DEFAULTS,
  checkGenerateOptionTypes,
  checkImportOptionTypes,
  resolveGenerationOptions,
  type ResolvedGeneration,
} from './options.js';
import { ENCODER_MODES, samplePgm, sampleMdlm, type BatchStep } from './sampling/samplers.js';
import type {
  BatchOptions,
  BatchResult,
  BatchStepEvent,
  EngineOptions,
  ImportOptions,
  GenerateOptions,
  GenerationResult,
  ModelWeights,
  StepEvent,
} from './types.js';

/**
 * A running generation: iterate it for step events, await it for the result (a Promise:
 * `then`, `catch`, `finally`). It runs whether or not anyone iterates; events are buffered.
 */
export class GenerationRun<E, R> implements AsyncIterable<E>, Promise<R> {
  readonly [Symbol.toStringTag] = 'GenerationRun';
  private readonly events: E[] = [];
  private wake: (() => void) | undefined;
  private finished = false;
  private readonly result: Promise<R>;

  constructor(body: (emit: (e: E) => void) => Promise<R>) {
    this.result = body((e) => {
      this.events.push(e);
      this.wake?.();
    }).finally(() => {
      this.finished = true;
      this.wake?.();
    });
    this.result.catch(() => undefined); // rejections surface through then() and iteration
  }

  then<A = R, B = never>(
    onFulfilled?: ((value: R) => A | PromiseLike<A>) | null,
    onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.result.then(onFulfilled, onRejected);
  }

  catch<B = never>(onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<R | B> {
    return this.result.catch(onRejected);
  }

  finally(onFinally?: (() => void) | null): Promise<R> {
    return this.result.finally(onFinally);
  }

  async *[Symbol.asyncIterator](): AsyncIterator<E> {
    let next = 0;
    for (;;) {
      if (next < this.events.length) {
        yield this.events[next++];
        continue;
      }
      if (this.finished) {
        await this.result; // rethrows a failure
        return;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/** What `Engine.create` takes of the engine options, and whether the engine owns the device (destroys it on dispose). */
export type EngineSetup = Pick<EngineOptions, 'maxBatch' | 'weightStorage' | 'onProgress' | 'signal' | 'warmUp'> & {
  ownsDevice?: boolean;
};

/** How long a GPU failure waits for device.lost before it is reported as itself. */
const LOST_GRACE_MS = 1000;

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

const deviceLost = (reason: string): PgmError =>
  new PgmError('device-lost', `the GPU device was lost (${reason}); create a new engine`);

/** The public engine: one model on one device. */
export class Engine {
  readonly config: ModelConfig;
  readonly vocabulary: Vocabulary;
  readonly adapter: AdapterSummary;
  /**
   * Resolves when the GPU device is lost (a driver reset, the device destroyed) with the error
   * `generate` rejects with from then on; never for an engine disposed first.
   */
  readonly lost: Promise<PgmError>;
  private queue: Promise<unknown> = Promise.resolve();
  private lostReason: string | undefined;
  private disposed = false;
  /** Aborted by dispose(): the running generation stops at its next step. */
  private readonly disposal = new AbortController();
  private readonly unregister: () => void;

  private constructor(
    private readonly ctx: GpuContext,
    private readonly model: GpuModel,
    private readonly ownsDevice: boolean,
  ) {
    this.config = model.config;
    this.adapter = ctx.adapter;
    this.vocabulary = vocabularyOf(model.config);
    this.lost = ctx.lost.then((info) => {
      this.lostReason = info.message || info.reason || 'unknown reason';
      return this.disposed ? new Promise<never>(() => undefined) : deviceLost(this.lostReason);
    });
    this.unregister = releaseAtExit(this);
  }

  /**
   * An engine for `loaded` on `ctx`: weights uploaded, pipelines built (the progress events of
   * upload and compile), and with `warmUp` one tiny generation per forward pass (warm-up). A
   * model opened by loadModel is read as it is uploaded: its shards' download and verify events
   * come between upload's first event (no bytes loaded yet) and its last. An abort of `signal`
   * in between disposes what was built (and the device, if owned).
   */
  static async create(ctx: GpuContext, loaded: ModelWeights, options: EngineSetup = {}): Promise<Engine> {
    const bytes = (loaded as Partial<LoadedModel>).dirConfig?.shards.reduce((a, s) => a + s.size, 0) ?? 0;
    const report = (phase: LoadPhase, ms?: number) =>
      options.onProgress?.({
        phase,
        loaded: ms === undefined ? 0 : 1,
        total: 1,
        loadedBytes: phase === 'upload' && ms === undefined ? 0 : bytes,
        totalBytes: bytes,
        ms,
      });
    let engine: Engine | undefined;
    try {
      checkAborted(options.signal);
      report('upload');
      const model = await GpuModel.load(ctx, loaded.config, loaded.weights, {
        maxBatch: options.maxBatch,
        weightStorage: options.weightStorage,
        onPhase: report,
      });
      engine = new Engine(ctx, model, options.ownsDevice ?? false);
      checkAborted(options.signal);
      if (options.warmUp ?? ENGINE_DEFAULTS.warmUp) {
        report('warm-up');
        const start = now();
        // One tiny untimed run per forward pass (a PGM builds its incremental pass on first use).
        for (const encoder of loaded.config.arch === 'pgm' ? ENCODER_MODES : (['exact'] as const))
          await engine.generate({ length: 2, steps: 1, encoder, signal: options.signal });
        report('warm-up', now() - start);
      }
      return engine;
    } catch (e) {
      if (engine) engine.dispose();
      else if (options.ownsDevice) ctx.device.destroy();
      throw options.signal?.aborted ? abortedError(options.signal) : e;
    }
  }

  /** GPU bytes this engine holds (weights, activations, staging). */
  get gpuBytes(): number {
    return this.model.gpuBytes;
  }

  /** The low-level forward pass (see GpuModel): PGM or MDLM logits for a batch. */
  get gpuModel(): GpuModel {
    return this.model;
  }

  /** Generate one sequence, streaming step events. */
  generate(options: GenerateOptions = {}): GenerationRun<StepEvent, GenerationResult> {
    try {
      checkGenerateOptionTypes(options);
    } catch (e) {
      return new GenerationRun(() => Promise.reject(e));
    }
    const { prompt, infill, seed, ...shared } = options;
    const batch = this.start({ ...shared, sequences: [{ prompt, infill, seed }] });
    return new GenerationRun<StepEvent, GenerationResult>(async (emit) => {
      for await (const e of batch) emit(e.sequences[0]);
      const r = await batch;
      return { ...r.sequences[0], stats: r.stats };
    });
  }

  /** Generate several sequences at once (own prompts and seeds), padded per sequence. */
  generateBatch(options: BatchOptions): GenerationRun<BatchStepEvent, BatchResult> {
    try {
      checkBatchOptionTypes(options);
    } catch (e) {
      return new GenerationRun(() => Promise.reject(e));
    }
    return this.start(options);
  }

  /** Resolve type-checked options (bad ones are typed errors before any GPU work) and queue the run. */
  private start(options: BatchOptions): GenerationRun<BatchStepEvent, BatchResult> {
    let resolved: ResolvedGeneration;
    try {
      resolved = resolveGenerationOptions(options, {
        config: this.config,
        vocabulary: this.vocabulary,
        maxBatch: this.model.ws.maxBatch,
      });
    } catch (e) {
      return new GenerationRun(() => Promise.reject(e));
    }
    return new GenerationRun<BatchStepEvent, BatchResult>((emit) => {
      // Overlapping calls run one after another, in call order.
      const run = this.queue.then(() => this.run(resolved, emit));
      this.queue = run.catch(() => undefined);
      return run;
    });
  }

  private async run(
    { plans, sampling: o, signal, placeholder }: ResolvedGeneration,
    emit: (e: BatchStepEvent) => void,
  ): Promise<BatchResult> {
    this.assertUsable();
    const sampler = this.config.arch === 'pgm' ? samplePgm : sampleMdlm;
    const stop = signal ? AbortSignal.any([signal, this.disposal.signal]) : this.disposal.signal;
    const stepMs: number[] = [];
    let forwardPasses = 0;
    let encoderRows = 0;
    let decoderRows = 0;
    let last: BatchStep | undefined;
    const start = now();
    let t = start;
    try {
      for await (const step of sampler(this.model, plans, o, stop)) {
        const ms = now() - t;
        t = now();
        stepMs.push(ms);
        if (step.forward) forwardPasses++;
        encoderRows += step.encoderRows.reduce((a, b) => a + b, 0);
        decoderRows += step.decoderRows.reduce((a, b) => a + b, 0);
        last = step;
        emit({
          step: step.step,
          steps: step.steps,
          ms,
          sequences: step.tokens.map((tokens, b) => ({
            step: step.step,
            steps: step.steps,
            ms,
            revealed: step.revealed[b].map((r) => ({ position: r.position, token: this.vocabulary.toGpt2(r.token) })),
            tokens: this.toGpt2(tokens),
            text: this.vocabulary.decodePartial(tokens.subarray(1), placeholder),
            encoderRows: step.encoderRows[b],
            decoderRows: step.decoderRows[b],
          })),
        });
      }
    } catch (e) {
      if (this.disposed)
        throw new PgmError(
          'disposed',
          'the engine was disposed during generation; create a new engine to generate again',
          { cause: e },
        );
      // A readback can fail (mapAsync: AbortError) before device.lost resolves (Chromium does
      // this): give the loss a moment to arrive, so it is reported as what it is.
      if (this.lostReason === undefined && !(e instanceof PgmError))
        await Promise.race([this.ctx.lost, new Promise((resolve) => setTimeout(resolve, LOST_GRACE_MS))]);
      if (this.lostReason !== undefined && !(e instanceof PgmError && e.code === 'aborted')) {
        throw new PgmError(
          'device-lost',
          `the GPU device was lost during generation (${this.lostReason}); create a new engine`,
          { cause: e },
        );
      }
      throw e;
    }
    const totalMs = now() - start;
    const generated = plans.reduce((a, p) => a + o.length - p.known.size, 0);
    return {
      sequences: (last?.tokens ?? []).map((tokens) => ({
        text: this.vocabulary.decode(tokens.subarray(1)),
        tokens: this.toGpt2(tokens),
      })),
      stats: {
        steps: stepMs.length,
        forwardPasses,
        totalMs,
        stepMs,
        tokensPerSecond: generated / (totalMs / 1000),
        encoderRows,
        decoderRows,
      },
    };
  }

  private toGpt2(tokens: Int32Array): Int32Array {
    return tokens.map((id) => (id < 0 ? -1 : this.vocabulary.toGpt2(id)));
  }

  private assertUsable(): void {
    if (this.disposed) fail('disposed', 'this engine was disposed; create a new one');
    if (this.lostReason !== undefined) throw deviceLost(this.lostReason);
  }

  /** Free every GPU buffer (and the device, if the engine created it). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.unregister();
    this.disposal.abort();
    this.model.dispose();
    if (this.ownsDevice) this.ctx.device.destroy();
  }
}

/** What an engine offers wherever it runs: `Engine` on this thread, `WorkerEngine` in a worker (createWorkerEngine). */
export type EngineInterface = Pick<Engine, 'config' | 'adapter' | 'lost' | 'generate' | 'generateBatch' | 'dispose'>;

/** The tokenizer edge of a model: its reduced vocabulary, or plain GPT-2. */
export function vocabularyOf(config: ModelConfig): Vocabulary {
  if (config.vocabMap) return Vocabulary.fromMap(config.vocabMap, 'config.json vocabMap');
  if (config.vocabSize === 50258) return Vocabulary.gpt2();
  fail(
    'config',
    `a model with ${config.vocabSize} token ids and no vocabMap has no tokenizer; text generation needs the GPT-2 vocabulary (50258) or a vocabMap`,
  );
}

/** Load a model and put it on the GPU (browser; Node uses `createEngine` from `pgm-webgpu/node`). */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  checkEngineOptionTypes(options);
  return engineOn(options, await loadWeights(options));
}

/** What loading takes of the engine options: progress, signal, stall timeout, and the store (browsers: the Cache API unless `cache` is false). */
export function loadOptions(options: EngineOptions): Omit<LoadOptions, 'manifestEntry'> {
  const store = options.cache === false ? undefined : typeof options.cache === 'object' ? options.cache : cacheStore();
  return { onProgress: options.onProgress, signal: options.signal, stallTimeout: options.stallTimeout, store };
}

/** The weights `options` name (see EngineOptions.model), loaded over fetch, from local files or from the cache; options already checked. */
export async function loadWeights(options: EngineOptions): Promise<ModelWeights> {
  const { model, manifestUrl } = options;
  if (isLocalModel(model)) return loadLocalModel(model, loadOptions(options));
  if (typeof model === 'object') return model;
  if (model !== undefined && /^(https?:|\/|\.\.?\/)/.test(model)) return loadModelFromUrl(model, loadOptions(options));
  if (manifestUrl !== undefined) return loadModelFromManifest(manifestUrl, model, loadOptions(options));
  return loadPackagedModel(model, loadOptions(options));
}

/**
 * Convert a Lightning `.ckpt` (a Blob: a File the user picked or dropped; read lazily, never
 * whole) into the model cache as a sharded model, EMA weights in f16 by default, with progress
 * events; `createEngine({ model: id })` then loads it from the cache, offline. Options: the
 * table IMPORT_OPTIONS.
 */
export async function importCheckpoint(checkpoint: Blob, options: ImportOptions = {}): Promise<ImportedModel> {
  if (!(typeof Blob !== 'undefined' && checkpoint instanceof Blob))
    fail('option', `importCheckpoint: the checkpoint must be a Blob or a File, got ${brief(checkpoint)}`);
  checkImportOptionTypes(options);
  const { cache, ...rest } = options;
  const store =
    typeof cache === 'object'
      ? cache
      : (cacheStore() ??
        fail(
          'option',
          'importCheckpoint: this environment has no Cache API (Node, or a page served neither over https nor from localhost): pass { cache: store }, a ModelStore',
        ));
  return convertIntoStore(checkpoint, store, rest);
}

/** Put loaded weights on the GPU of `options.gpu` (or a new device). */
export async function engineOn(
  options: EngineOptions,
  loaded: ModelWeights,
  requestDevice: () => Promise<GpuContext> = () => requestGpu(),
): Promise<Engine> {
  vocabularyOf(loaded.config);
  checkAborted(options.signal);
  const ctx = options.gpu ?? (await requestDevice());
  const { maxBatch, weightStorage, onProgress, signal, warmUp } = options;
  return Engine.create(ctx, loaded, { maxBatch, weightStorage, onProgress, signal, warmUp, ownsDevice: !options.gpu });
}
