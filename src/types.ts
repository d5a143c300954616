/** The public types of the API: engine options, generation options, step events and results. */
import type { GpuContext } from './gpu/context.js';
import type { ImportOptions as ConvertIntoStoreOptions, LocalModel } from './convert/import.js';
import type { ModelConfig } from './weights/config.js';
import type { ModelStore } from './weights/cache.js';
import type { WeightStorage } from './model/gpu-model.js';
import type { LoadProgress } from './weights/load.js';
import type { Weights } from './weights/host-tensor.js';
import type { EncoderMode } from './sampling/samplers.js';
import type { Order, Schedule } from './sampling/schedule.js';

export type { LoadPhase, LoadProgress } from './weights/load.js';
export type { ModelStore } from './weights/cache.js';
export type { ImportedModel, LocalModel } from './convert/import.js';
export type { LocalId, LocalModelInfo, ModelFolder } from './weights/local.js';

/**
 * A model: its config and its tensors, in memory (a converter's float32 weights, a test's) or
 * read as the engine uploads them (`loadModel` and its kin: shard by shard).
 */
export interface ModelWeights {
  config: ModelConfig;
  weights: Weights;
}

export interface EngineOptions {
  /**
   * An id from weights-manifest.json (default: its default model), a model directory URL
   * (`https://...`, `/...`, `./...`), a model folder the user picked (its files or directory
   * handle), a Lightning `.ckpt` as a Blob (converted into the cache: see importCheckpoint), a
   * local model id `local:<name>` (see localModels), or a model opened or built already
   * (`loadModel` and its kin, weights in memory).
   */
  model?: string | ModelWeights | LocalModel;
  /** A device to share; by default the engine requests its own (navigator.gpu). */
  gpu?: GpuContext;
  /**
   * Where model ids are looked up. Default: the manifest shipped in the package, whose models
   * load from where the app's bundler emitted them (Vite, webpack) or from beside the package.
   */
  manifestUrl?: string | URL;
  /** The load as it goes: bytes as they arrive, then each phase with its time (see LoadProgress). */
  onProgress?: (p: LoadProgress) => void;
  /** Largest batch `generateBatch` takes (default 4). */
  maxBatch?: number;
  /** GPU storage of the matmul weights (default 'auto': f16 files stay f16); see GpuModelOptions. */
  weightStorage?: WeightStorage;
  /** Cancels the load: createEngine rejects with PgmError('aborted'). */
  signal?: AbortSignal;
  /** Milliseconds a download may receive less than 16 KiB before it fails (default 30000; Infinity: never). */
  stallTimeout?: number;
  /** Keep verified model files for the next load: true (browsers' default: the Cache API), false, or a store of your own. */
  cache?: boolean | ModelStore;
  /** Run a tiny generation through each forward pass before resolving (default false). */
  warmUp?: boolean;
}

/** The options of importCheckpoint (the table IMPORT_OPTIONS): how the checkpoint is converted, and where the model goes. */
export interface ImportOptions extends ConvertIntoStoreOptions {
  /** Where the converted model goes: true (default: this browser's Cache API) or a store of your own. */
  cache?: true | ModelStore;
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
  /**
   * PGM: 'exact' (default) re-encodes every clean token each step; 'incremental' keeps a KV set
   * and encodes only new tokens; 'delayed' also encodes each token once more in the next step;
   * 'adaptive' also encodes again the kept tokens the GPU finds stale (`staleness`).
   */
  encoder?: EncoderMode;
  /** With encoder 'incremental', 'delayed' or 'adaptive': steps with step % refresh == 0 re-encode every clean token (default: never). */
  refresh?: number;
  /**
   * With encoder 'adaptive': a kept token is encoded again when more than this share of its
   * first-layer attention goes to tokens it has not seen (default DEFAULT_STALENESS).
   */
  staleness?: number;
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
  /** Rows this step ran through the encoder (MDLM: the network) and the decoder, for this sequence. */
  encoderRows: number;
  decoderRows: number;
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
