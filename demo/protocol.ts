/** Messages between the demo page and its generation worker (demo/worker.ts). */
import type { EncoderMode, Order } from '../src/index.js';

/**
 * The worker holds up to two engines: `main` (the picked model) and `twin` (race mode). A
 * race's two PGM lanes (exact and incremental encoder) are two runs of the same engine.
 */
export type Slot = 'main' | 'twin';

/** A manifest's model (manifestUrl undefined: the manifest packaged with the engine), or a model directory. */
export type ModelSource = { kind: 'manifest'; manifestUrl: string | undefined; id: string } | { kind: 'url'; url: string };

export interface ModelInfo {
  label: string;
  arch: 'pgm' | 'mdlm';
  length: number;
  vocabSize: number;
  hiddenSize: number;
  pNucleus: number;
  params: number;
  bytes: number;
  /** Every shard came from the Cache API (no download). */
  fromCache: boolean;
  /** Fetching (or reading from the cache) and verifying the files, uploading them shard by shard, building the pipelines. */
  readMs: number;
  /** An untimed warm-up run of each forward pass. */
  gpuMs: number;
}

export interface GenerationSettings {
  prompt?: string;
  infill?: string;
  length: number;
  steps: number;
  order: Order;
  temperature: number;
  topP?: number;
  seed: number;
  /** PGM only (undefined: the engine's default, exact); an MDLM rejects it. */
  encoder?: EncoderMode;
  /** With encoder incremental (undefined: never). */
  refresh?: number;
}

/** A token as shown in the grid: its GPT-2 id and text. */
export interface ShownToken {
  position: number;
  token: number;
  piece: string;
}

export type ToWorker =
  | { type: 'load'; slot: Slot; source: ModelSource }
  | { type: 'generate'; slot: Slot; settings: GenerationSettings }
  | { type: 'stop' }
  | { type: 'clear-cache' }
  /** Destroy the device of `slot`, as a driver reset would (tests and the curious). */
  | { type: 'lose-device'; slot: Slot };

export type FromWorker =
  | { type: 'progress'; slot: Slot; loadedBytes: number; totalBytes: number }
  | { type: 'loaded'; slot: Slot; info: ModelInfo }
  | {
      type: 'step';
      slot: Slot;
      step: number;
      steps: number;
      /** Known before the first step (BOS, prompt, infill text); only on the first event. */
      given: ShownToken[];
      revealed: ShownToken[];
      text: string;
      ms: number;
    }
  | {
      type: 'done';
      slot: Slot;
      text: string;
      steps: number;
      totalMs: number;
      tokensPerSecond: number;
      stepMs: number[];
      /** Rows the encoder (MDLM: the network) and the decoder ran, summed over the steps. */
      encoderRows: number;
      decoderRows: number;
    }
  | { type: 'stopped'; slot: Slot }
  | { type: 'cache-cleared' }
  | { type: 'device-lost'; slot: Slot; message: string }
  /** `code` is the PgmError code, or `internal` for anything unexpected. */
  | { type: 'error'; slot?: Slot; code: string; message: string };
