/**
 * The engine in a module worker: `createWorkerEngine(worker, options)` on the page loads a model
 * in a worker that runs `pgm-webgpu/worker` (src/worker.ts) and returns an engine with the
 * interface of `Engine`. Its runs are `GenerationRun`s fed by the worker's step events; an
 * AbortSignal is forwarded, a failure arrives as the PgmError the worker's engine threw (its
 * code and message). Messages carry `channel: 'pgm-webgpu'` and the engine's number, so
 * several engines, and messages of the app's own, may share one worker.
 */
import { GenerationRun, type EngineInterface } from './engine.js';
import { PgmError, fail, type PgmErrorCode } from './errors.js';
import type { AdapterSummary } from './gpu/context.js';
import type { ModelConfig } from './weights/config.js';
import { abortedError, checkAborted, DEFAULT_STALL_TIMEOUT } from './weights/fetch.js';
import type { LoadProgress } from './weights/load.js';
import { checkBatchOptionTypes, checkEngineOptionTypes, checkGenerateOptionTypes } from './options.js';
import type {
  BatchOptions,
  BatchResult,
  BatchStepEvent,
  EngineOptions,
  GenerateOptions,
  GenerationResult,
  StepEvent,
} from './types.js';

/** createEngine's options, less what cannot cross to a worker: a device (`gpu`) and a ModelStore's functions. */
export type WorkerEngineOptions = Omit<EngineOptions, 'gpu' | 'cache'> & { cache?: boolean };

/** Marks this library's messages. */
export const CHANNEL = 'pgm-webgpu';

/** An error as it crosses: a PgmError keeps its code; another error its name and message. */
export interface SentError {
  name: string;
  message: string;
  code?: PgmErrorCode;
}

/** What the page asks of the worker, for engine `engine` (and its generation `run`). */
export type ToWorker =
  | { type: 'create'; engine: number; options: Omit<WorkerEngineOptions, 'onProgress' | 'signal'>; progress: boolean }
  /** `aborted`: the signal had fired before the call (its reason, when it is an error). */
  | {
      type: 'generate';
      engine: number;
      run: number;
      batch: boolean;
      options: GenerateOptions | BatchOptions;
      aborted?: { reason?: SentError };
    }
  /** Abort the load (no `run`) or a generation; `reason`: the signal's, when it is an error. */
  | { type: 'abort'; engine: number; run?: number; reason?: SentError }
  | { type: 'dispose'; engine: number };

/** What the worker answers; `failed` without `run` is the load's failure. */
export type FromWorker =
  | { type: 'accepted'; engine: number }
  | { type: 'progress'; engine: number; progress: LoadProgress }
  | { type: 'ready'; engine: number; config: ModelConfig; adapter: AdapterSummary }
  | { type: 'step'; engine: number; run: number; event: StepEvent | BatchStepEvent }
  | { type: 'done'; engine: number; run: number; result: GenerationResult | BatchResult }
  | { type: 'failed'; engine: number; run?: number; error: SentError }
  | { type: 'lost'; engine: number; error: SentError };

/** A message as posted: with the channel. */
export type Posted<M> = M extends unknown ? M & { channel: typeof CHANNEL } : never;

/** An event of the worker, as far as createWorkerEngine reads it (a MessageEvent, an ErrorEvent). */
export interface WorkerEvent {
  data?: unknown;
  message?: string;
  preventDefault?(): void;
}

/** What createWorkerEngine needs of a worker (a Worker has it). */
export interface EngineWorker {
  postMessage(message: unknown): void;
  addEventListener(type: 'message' | 'error', listener: (event: WorkerEvent) => void): void;
  removeEventListener(type: 'message' | 'error', listener: (event: WorkerEvent) => void): void;
}

export function sendError(e: unknown): SentError {
  if (e instanceof PgmError) return { name: e.name, message: e.message, code: e.code };
  if (e instanceof Error) return { name: e.name, message: e.message };
  return { name: 'Error', message: String(e) };
}

export function receiveError(e: SentError): Error {
  return e.code ? new PgmError(e.code, e.message) : Object.assign(new Error(e.message), { name: e.name });
}

/** An abort's reason, where it can cross: an error (a DOMException's name and message, a PgmError's code). */
const sentReason = (signal: AbortSignal): SentError | undefined =>
  signal.reason instanceof Error ? sendError(signal.reason) : undefined;

/** Post `message` on its channel; options that cannot be copied to the worker are an option error. */
function post(worker: EngineWorker, message: ToWorker): void {
  try {
    worker.postMessage({ channel: CHANNEL, ...message } satisfies Posted<ToWorker>);
  } catch (e) {
    throw new PgmError(
      'option',
      `the options cannot be copied to the worker (${(e as Error).message}); give plain values`,
      { cause: e },
    );
  }
}

/** Numbers the worker engines of this page (several may share a worker). */
let engines = 0;

/** A URL relative to this page, made absolute: the worker would resolve it against its own script's URL. */
function fromPage(url: string | URL): string {
  const base = typeof document !== 'undefined' ? document.baseURI : globalThis.location?.href;
  return new URL(url, base).href;
}

/**
 * Load a model in `worker` (a module worker running `pgm-webgpu/worker`): createEngine's options
 * but `gpu` and a ModelStore; relative URLs are this page's. Resolves when the engine is ready
 * there; rejects with the load's PgmError, PgmError('aborted') when `signal` fires (the worker
 * has let go of the load by then), or PgmError('worker') when the worker fails to start or does
 * not answer within `stallTimeout`.
 */
export function createWorkerEngine(worker: EngineWorker, options: WorkerEngineOptions = {}): Promise<WorkerEngine> {
  return new Promise<WorkerEngine>((resolve, reject) => {
    checkEngineOptionTypes(options);
    const { onProgress, signal, ...rest } = options;
    const stallTimeout = rest.stallTimeout ?? DEFAULT_STALL_TIMEOUT;
    if ((options as EngineOptions).gpu !== undefined)
      fail(
        'option',
        'createWorkerEngine: gpu cannot cross to a worker (a device belongs to the thread that requested it); the worker requests its own',
      );
    if (typeof rest.cache === 'object') {
      fail(
        'option',
        'createWorkerEngine: cache takes true or false (a ModelStore is functions, which cannot cross to a worker); for a store of your own, call createEngine({ cache: store }) in a worker of your own',
      );
    }
    if (typeof worker?.postMessage !== 'function' || typeof worker.addEventListener !== 'function') {
      fail(
        'option',
        "createWorkerEngine: worker must be a Worker: new Worker(new URL('pgm-webgpu/worker', import.meta.url), { type: 'module' })",
      );
    }
    const { model, manifestUrl } = rest;
    if (typeof model === 'object' && 'config' in model && !(model.weights instanceof Map)) {
      fail(
        'option',
        'createWorkerEngine: a model opened by loadModel (its shards are read as it loads) cannot cross to a worker; give its URL, manifest id or local model, which the worker opens, or its weights in a Map',
      );
    }
    checkAborted(signal);
    const id = ++engines;
    if (typeof model === 'string' && /^(https?:|\/|\.\.?\/)/.test(model)) rest.model = fromPage(model);
    if (manifestUrl !== undefined) rest.manifestUrl = fromPage(manifestUrl);

    let accepted = false;
    const silence = (): void =>
      settle(
        new PgmError(
          'worker',
          `the worker did not answer within ${stallTimeout / 1000} s: does it run pgm-webgpu/worker? (new Worker(new URL('pgm-webgpu/worker', import.meta.url), { type: 'module' }), or a worker file that imports 'pgm-webgpu/worker')`,
        ),
      );
    const timer = stallTimeout < Infinity ? setTimeout(silence, Math.min(stallTimeout, 2 ** 31 - 1)) : undefined;
    const abort = (): void => post(worker, { type: 'abort', engine: id, reason: sentReason(signal!) });
    const onError = (event: WorkerEvent): void => {
      if (accepted) return; // the worker runs: its own code's errors are not ours
      event.preventDefault?.();
      const why =
        event.message || "it could not be loaded: check its URL, and that it was created with { type: 'module' }";
      settle(new PgmError('worker', `the engine's worker failed before it answered (${why})`));
    };
    const onMessage = (event: WorkerEvent): void => {
      const m = event.data as Posted<FromWorker> | undefined;
      if (m?.channel !== CHANNEL || m.engine !== id) return;
      accepted = true;
      clearTimeout(timer);
      if (m.type === 'progress') onProgress?.(m.progress);
      else if (m.type === 'failed') settle(receiveError(m.error));
      else if (m.type === 'ready') {
        // Ready just as the signal fired: the caller gave up, so the engine goes.
        if (signal?.aborted) post(worker, { type: 'dispose', engine: id });
        settle(signal?.aborted ? abortedError(signal) : new WorkerEngine(worker, id, m.config, m.adapter));
      }
    };
    function settle(outcome: WorkerEngine | Error): void {
      clearTimeout(timer);
      worker.removeEventListener('message', onMessage);
      worker.removeEventListener('error', onError);
      signal?.removeEventListener('abort', abort);
      if (outcome instanceof WorkerEngine) resolve(outcome);
      else reject(outcome);
    }
    worker.addEventListener('message', onMessage);
    worker.addEventListener('error', onError);
    signal?.addEventListener('abort', abort, { once: true });
    try {
      post(worker, { type: 'create', engine: id, options: rest, progress: onProgress !== undefined });
    } catch (e) {
      settle(e as Error);
    }
  });
}

interface PendingRun {
  emit(event: unknown): void;
  resolve(result: unknown): void;
  reject(error: Error): void;
  /** Stop listening to the run's signal. */
  done(): void;
}

/**
 * An engine in a worker (see createWorkerEngine), with Engine's interface: `config`, `adapter`,
 * `lost`, `generate`, `generateBatch`, `dispose`. No `vocabulary`: the tokenizer is half a
 * megabyte of JavaScript the page need not load (`vocabularyOf(engine.config)` builds it).
 */
export class WorkerEngine implements EngineInterface {
  readonly lost: Promise<PgmError>;
  private reportLost!: (error: PgmError) => void;
  private readonly pending = new Map<number, PendingRun>();
  private runs = 0;
  private disposed = false;

  /** Made by createWorkerEngine, once the worker's engine `id` is ready. */
  constructor(
    private readonly worker: EngineWorker,
    private readonly id: number,
    readonly config: ModelConfig,
    readonly adapter: AdapterSummary,
  ) {
    this.lost = new Promise((resolve) => (this.reportLost = resolve));
    worker.addEventListener('message', this.onMessage);
  }

  generate(options: GenerateOptions = {}): GenerationRun<StepEvent, GenerationResult> {
    return this.start(false, options, checkGenerateOptionTypes);
  }

  generateBatch(options: BatchOptions): GenerationRun<BatchStepEvent, BatchResult> {
    return this.start(true, options, checkBatchOptionTypes);
  }

  /** Free the worker's engine (its GPU buffers and device): a running generation rejects with PgmError('disposed'). The worker stays; terminate it when it has no other use. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    post(this.worker, { type: 'dispose', engine: this.id });
    this.release();
  }

  private start<E, R>(
    batch: boolean,
    options: GenerateOptions | BatchOptions,
    check: (options: unknown) => void,
  ): GenerationRun<E, R> {
    return new GenerationRun<E, R>(async (emit) => {
      check(options);
      if (this.disposed) fail('disposed', 'this engine was disposed; create a new one');
      const { signal, ...rest } = options;
      const run = ++this.runs;
      const abort = (): void => post(this.worker, { type: 'abort', engine: this.id, run, reason: sentReason(signal!) });
      return new Promise<R>((resolve, reject) => {
        this.pending.set(run, {
          emit: emit as (e: unknown) => void,
          resolve: resolve as (r: unknown) => void,
          reject,
          done: () => signal?.removeEventListener('abort', abort),
        });
        try {
          post(this.worker, {
            type: 'generate',
            engine: this.id,
            run,
            batch,
            options: rest,
            aborted: signal?.aborted ? { reason: sentReason(signal) } : undefined,
          });
        } catch (e) {
          this.settle(run, e as Error);
          return;
        }
        signal?.addEventListener('abort', abort, { once: true });
      });
    });
  }

  private readonly onMessage = (event: WorkerEvent): void => {
    const m = event.data as Posted<FromWorker> | undefined;
    if (m?.channel !== CHANNEL || m.engine !== this.id) return;
    if (m.type === 'lost') this.reportLost(receiveError(m.error) as PgmError);
    else if (m.type === 'step') this.pending.get(m.run)?.emit(m.event);
    else if (m.type === 'done') this.settle(m.run, m.result);
    else if (m.type === 'failed' && m.run !== undefined) this.settle(m.run, receiveError(m.error));
  };

  private settle(run: number, outcome: unknown): void {
    const pending = this.pending.get(run);
    if (!pending) return;
    this.pending.delete(run);
    pending.done();
    if (outcome instanceof Error) pending.reject(outcome);
    else pending.resolve(outcome);
    this.release();
  }

  /** Once disposed and every run has its answer, stop listening. */
  private release(): void {
    if (this.disposed && this.pending.size === 0) this.worker.removeEventListener('message', this.onMessage);
  }
}
