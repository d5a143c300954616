import { PgmError, brief, fail } from './errors.js';
import { requestGpu, type AdapterSummary, type GpuContext } from './gpu/context.js';
import { releaseAtExit } from './gpu/release.js';
import type { ModelConfig } from './model/config.js';
import { GpuModel, type WeightStorage } from './model/gpu-model.js';
import { loadModelFromManifest, loadModelFromUrl, loadPackagedModel } from './model/load.js';
import type { WeightMap } from './model/tensor.js';
import { Vocabulary } from './model/vocab.js';
import { checkBatchOptionTypes, checkGenerateOptionTypes, parseInfillTemplate } from './options.js';
import { samplePgm, sampleMdlm, checkSamplingOptions, type BatchStep, type SamplingOptions, type SequencePlan } from './sampling/generate.js';
import type { Order, Schedule } from './sampling/schedule.js';

export interface LoadProgress {
  loadedBytes: number;
  totalBytes: number;
}

/** A model already in memory: config + float32 weights (from a converter or a test). */
export interface ModelWeights {
  config: ModelConfig;
  weights: WeightMap;
}

export interface EngineOptions {
  /**
   * An id from weights-manifest.json (default: its default model), a model directory URL
   * (`https://...`, `/...`, `./...`), or weights already loaded.
   */
  model?: string | ModelWeights;
  /** A device to share; by default the engine requests its own (navigator.gpu). */
  gpu?: GpuContext;
  /**
   * Where model ids are looked up. Default: the manifest shipped in the package, whose models
   * load from where the app's bundler emitted them (Vite, webpack) or from beside the package.
   */
  manifestUrl?: string | URL;
  onProgress?: (p: LoadProgress) => void;
  /** Largest batch `generateBatch` takes (default 4). */
  maxBatch?: number;
  /** GPU storage of the matmul weights (default 'auto': f16 files stay f16); see GpuModelOptions. */
  weightStorage?: WeightStorage;
}

/** Text known in advance at a given position (infilling). */
export interface InfillSegment {
  position: number;
  text: string;
}

export interface SequenceOptions {
  /** A prefix: its tokens are clean at positions 1.. after BOS. */
  prompt?: string;
  /**
   * Known text anywhere: segments at explicit positions, or a template where `{{n}}` is a
   * hole of n tokens ("The {{4}} sat on the mat.{{20}}"). Positions not covered are generated.
   */
  infill?: string | InfillSegment[];
  seed?: number;
}

export interface SharedOptions {
  /** Generate positions < length (default: the model length). */
  length?: number;
  /** Sampling steps (default: min(64, positions to generate)). */
  steps?: number;
  /** random (the paper), left-to-right (semi-autoregressive blocks) or confident (PGM only). */
  order?: Order;
  /** uniform ("efficient-uniform", default) or non-uniform (binomial counts). */
  schedule?: Schedule;
  temperature?: number;
  /** Nucleus mass (default: the checkpoint's sampling.p_nucleus). */
  topP?: number;
  greedy?: boolean;
  signal?: AbortSignal;
  /** Shown for positions not revealed yet (default ▯). */
  placeholder?: string;
}

export type GenerateOptions = SequenceOptions & SharedOptions;
export interface BatchOptions extends SharedOptions {
  sequences: SequenceOptions[];
}

/** One step as seen by one sequence. Token ids are GPT-2 ids. */
export interface StepEvent {
  step: number;
  steps: number;
  revealed: { position: number; token: number }[];
  /** GPT-2 ids by position (BOS at 0), -1 = not revealed yet. */
  tokens: Int32Array;
  /** The text after BOS, unknown positions shown as the placeholder. */
  text: string;
  /** Milliseconds this step took (GPU work + readback). */
  ms: number;
}

export interface BatchStepEvent {
  step: number;
  steps: number;
  sequences: StepEvent[];
  ms: number;
}

export interface GenerationStats {
  steps: number;
  forwardPasses: number;
  totalMs: number;
  stepMs: number[];
  /** Tokens generated (all sequences) per second. */
  tokensPerSecond: number;
  /** Rows the encoder (MDLM: the network) and decoder processed, summed over steps and sequences. */
  encoderRows: number;
  decoderRows: number;
}

export interface SequenceResult {
  text: string;
  tokens: Int32Array;
}

export interface GenerationResult extends SequenceResult {
  stats: GenerationStats;
}

export interface BatchResult {
  sequences: SequenceResult[];
  stats: GenerationStats;
}

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

  then<A = R, B = never>(onFulfilled?: ((value: R) => A | PromiseLike<A>) | null, onRejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
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

/** How long a GPU failure waits for device.lost before it is reported as itself. */
const LOST_GRACE_MS = 1000;

const now = (): number => (typeof performance !== 'undefined' ? performance.now() : Date.now());

/** The public engine: one model on one device. */
export class Engine {
  readonly config: ModelConfig;
  readonly vocabulary: Vocabulary;
  readonly adapter: AdapterSummary;
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
    ctx.lost.then((info) => {
      this.lostReason = info.message || info.reason || 'unknown reason';
    });
    this.unregister = releaseAtExit(this);
  }

  static async create(ctx: GpuContext, loaded: ModelWeights, options: { maxBatch?: number; weightStorage?: WeightStorage; ownsDevice?: boolean } = {}): Promise<Engine> {
    const model = await GpuModel.load(ctx, loaded.config, loaded.weights, { maxBatch: options.maxBatch ?? 4, weightStorage: options.weightStorage });
    return new Engine(ctx, model, options.ownsDevice ?? false);
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
    const batch = this.generateBatch({ ...shared, sequences: [{ prompt, infill, seed }] });
    return new GenerationRun<StepEvent, GenerationResult>(async (emit) => {
      for await (const e of batch) emit(e.sequences[0]);
      const r = await batch;
      return { ...r.sequences[0], stats: r.stats };
    });
  }

  /** Generate several sequences at once (own prompts and seeds), padded per sequence. */
  generateBatch(options: BatchOptions): GenerationRun<BatchStepEvent, BatchResult> {
    // Validate before queueing: bad options are typed errors before any GPU work.
    let prepared: { plans: SequencePlan[]; sampling: SamplingOptions; placeholder?: string };
    try {
      prepared = this.prepare(options);
    } catch (e) {
      return new GenerationRun(() => Promise.reject(e));
    }
    return new GenerationRun<BatchStepEvent, BatchResult>((emit) => {
      // Overlapping calls run one after another, in call order.
      const run = this.queue.then(() => this.run(prepared.plans, prepared.sampling, options.signal, prepared.placeholder, emit));
      this.queue = run.catch(() => undefined);
      return run;
    });
  }

  private prepare(options: BatchOptions): { plans: SequencePlan[]; sampling: SamplingOptions; placeholder?: string } {
    checkBatchOptionTypes(options);
    const c = this.config;
    if (options.sequences.length > this.model.ws.maxBatch) fail('option', `batch of ${options.sequences.length} exceeds this engine's maxBatch ${this.model.ws.maxBatch}; create the engine with a larger maxBatch`);
    if (options.length !== undefined && (options.length < 2 || options.length > c.length)) fail('option', `length must be an integer in [2, ${c.length}] (the model length), got ${options.length}`);
    const texts = options.sequences.map((s, b) => this.knownText(s, b));
    const length = options.length ?? templateLength(texts) ?? c.length;
    const plans = texts.map((t, b) => {
      if (t.end > length) {
        const limit = options.length === undefined && length === c.length ? `the model's length is ${c.length}` : `length is ${length}`;
        fail('option', `sequence ${b}: ${t.what} needs positions up to ${t.end - 1} (position 0 is BOS), but ${limit}`);
      }
      return { known: t.known, seed: options.sequences[b].seed ?? Math.floor(Math.random() * 2 ** 31) };
    });
    const free = Math.min(...plans.map((p) => length - p.known.size));
    const sampling: SamplingOptions = {
      length,
      steps: options.steps ?? Math.max(1, Math.min(64, free)),
      order: options.order ?? 'random',
      schedule: options.schedule ?? 'uniform',
      temperature: options.temperature ?? 1,
      topP: options.topP ?? c.pNucleus,
      greedy: options.greedy ?? false,
    };
    checkSamplingOptions(sampling, c.length, c.maskId, c.arch);
    return { plans, sampling, placeholder: options.placeholder };
  }

  /** The tokens a sequence's prompt or infill fixes, by position, and how far they reach. */
  private knownText(s: SequenceOptions, b: number): KnownText {
    const known = new Map<number, number>([[0, this.config.bosId]]);
    const result: KnownText = { known, end: 1, what: 'nothing', endsWithHole: false };
    const reach = (end: number, what: string) => {
      if (end > result.end) Object.assign(result, { end, what });
    };
    if (s.prompt !== undefined && s.infill !== undefined) fail('option', `sequence ${b}: give either prompt or infill, not both`);
    // Text that cannot fit is refused before it is tokenized (which costs time in proportion to it).
    const texts = typeof s.infill === 'string' ? [s.infill] : Array.isArray(s.infill) ? s.infill.map((seg) => seg.text) : [s.prompt ?? ''];
    const chars = texts.reduce((a, t) => a + t.length, 0);
    if (chars > MAX_CHARS_PER_TOKEN * this.config.length) {
      fail('option', `sequence ${b}: ${s.prompt !== undefined ? 'the prompt' : 'the infill text'} has ${chars} characters, so at least ${Math.ceil(chars / MAX_CHARS_PER_TOKEN)} tokens, more than the model's length ${this.config.length}`);
    }
    if (s.prompt) {
      const ids = this.vocabulary.encode(s.prompt);
      ids.forEach((id, i) => known.set(1 + i, id));
      reach(1 + ids.length, `the prompt (${ids.length} tokens)`);
    } else if (typeof s.infill === 'string') {
      let position = 1;
      let textTokens = 0;
      let holeTokens = 0;
      const parts = parseInfillTemplate(s.infill, `sequence ${b}: `);
      for (const part of parts) {
        if ('hole' in part) {
          position += part.hole;
          holeTokens += part.hole;
        } else {
          const ids = this.vocabulary.encode(part.text);
          ids.forEach((id, i) => known.set(position + i, id));
          position += ids.length;
          textTokens += ids.length;
        }
      }
      reach(position, `the infill template ${brief(s.infill, 60)} (${textTokens} text and ${holeTokens} hole tokens)`);
      result.endsWithHole = parts.length > 0 && 'hole' in parts[parts.length - 1];
    } else if (s.infill) {
      if (s.infill.length > this.config.length) fail('option', `sequence ${b}: ${s.infill.length} infill segments for a model of length ${this.config.length}; give at most one segment per position`);
      for (const seg of s.infill) {
        const ids = this.vocabulary.encode(seg.text);
        ids.forEach((id, i) => {
          if (known.has(seg.position + i)) fail('option', `sequence ${b}: infill segments overlap at position ${seg.position + i}`);
          known.set(seg.position + i, id);
        });
        reach(seg.position + ids.length, `the infill segment at ${seg.position} (${ids.length} tokens)`);
      }
    }
    return result;
  }

  private async run(plans: SequencePlan[], o: SamplingOptions, signal: AbortSignal | undefined, placeholder: string | undefined, emit: (e: BatchStepEvent) => void): Promise<BatchResult> {
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
          })),
        });
      }
    } catch (e) {
      if (this.disposed) throw new PgmError('disposed', 'the engine was disposed during generation; create a new engine to generate again', { cause: e });
      // A readback can fail (mapAsync: AbortError) before device.lost resolves (Chromium does
      // this): give the loss a moment to arrive, so it is reported as what it is.
      if (this.lostReason === undefined && !(e instanceof PgmError)) await Promise.race([this.ctx.lost, new Promise((resolve) => setTimeout(resolve, LOST_GRACE_MS))]);
      if (this.lostReason !== undefined && !(e instanceof PgmError && e.code === 'aborted')) {
        throw new PgmError('device-lost', `the GPU device was lost during generation (${this.lostReason}); create a new engine`, { cause: e });
      }
      throw e;
    }
    const totalMs = now() - start;
    const generated = plans.reduce((a, p) => a + o.length - p.known.size, 0);
    return {
      sequences: (last?.tokens ?? []).map((tokens) => ({ text: this.vocabulary.decode(tokens.subarray(1)), tokens: this.toGpt2(tokens) })),
      stats: { steps: stepMs.length, forwardPasses, totalMs, stepMs, tokensPerSecond: generated / (totalMs / 1000), encoderRows, decoderRows },
    };
  }

  private toGpt2(tokens: Int32Array): Int32Array {
    return tokens.map((id) => (id < 0 ? -1 : this.vocabulary.toGpt2(id)));
  }

  private assertUsable(): void {
    if (this.disposed) fail('disposed', 'this engine was disposed; create a new one');
    if (this.lostReason !== undefined) fail('device-lost', `the GPU device was lost (${this.lostReason}); create a new engine`);
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

/**
 * The longest GPT-2 token is 128 bytes of UTF-8, and a UTF-16 code unit takes at least one
 * byte: text of n code units is at least n / 128 tokens (a reduced vocabulary only splits more).
 */
export const MAX_CHARS_PER_TOKEN = 128;

/** What a sequence's prompt or infill fixes: tokens by position (BOS at 0), and the first position after them. */
interface KnownText {
  known: Map<number, number>;
  end: number;
  /** What reaches `end`, for messages. */
  what: string;
  /** An infill template that ends with a hole: it fixes the length when none is given. */
  endsWithHole: boolean;
}

/**
 * The length a batch's infill templates fix when no length is given: where those that end
 * with a hole end (they must agree); undefined when none does.
 */
function templateLength(texts: KnownText[]): number | undefined {
  const ends = [...new Set(texts.filter((t) => t.endsWithHole).map((t) => t.end))];
  if (ends.length > 1) fail('option', `the infill templates end with holes at different lengths (${ends.join(', ')}); make them end at the same position or give a length`);
  return ends[0];
}

/** The tokenizer edge of a model: its reduced vocabulary, or plain GPT-2. */
export function vocabularyOf(config: ModelConfig): Vocabulary {
  if (config.vocabMap) return Vocabulary.fromMap(config.vocabMap, 'config.json vocabMap');
  if (config.vocabSize === 50258) return Vocabulary.gpt2();
  fail('config', `a model with ${config.vocabSize} token ids and no vocabMap has no tokenizer; text generation needs the GPT-2 vocabulary (50258) or a vocabMap`);
}

/** Load a model and put it on the GPU (browser; Node uses `createEngine` from `pgm-webgpu/node`). */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  return engineOn(options, await loadWeights(options));
}

/** The weights `options` name (see EngineOptions.model), loaded over fetch. */
export async function loadWeights(options: EngineOptions): Promise<ModelWeights> {
  if (typeof options !== 'object' || options === null) fail('option', `createEngine takes an options object, got ${brief(options)}`);
  const progress = options.onProgress && ((loadedBytes: number, totalBytes: number) => options.onProgress!({ loadedBytes, totalBytes }));
  const { model, manifestUrl } = options;
  if (typeof model === 'object' && model !== null) return model;
  if (model !== undefined && typeof model !== 'string') fail('option', `model must be a manifest id, a model directory URL or loaded weights, got ${brief(model)}`);
  if (model !== undefined && /^(https?:|\/|\.\.?\/)/.test(model)) return loadModelFromUrl(model, { onProgress: progress });
  if (manifestUrl !== undefined) return loadModelFromManifest(manifestUrl, model, { onProgress: progress });
  return loadPackagedModel(model, { onProgress: progress });
}

/** Put loaded weights on the GPU of `options.gpu` (or a new device). */
export async function engineOn(options: Pick<EngineOptions, 'gpu' | 'maxBatch' | 'weightStorage'>, loaded: ModelWeights, requestDevice: () => Promise<GpuContext> = () => requestGpu()): Promise<Engine> {
  vocabularyOf(loaded.config);
  const ctx = options.gpu ?? (await requestDevice());
  return Engine.create(ctx, loaded, { maxBatch: options.maxBatch, weightStorage: options.weightStorage, ownsDevice: !options.gpu });
}
