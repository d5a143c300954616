export { PgmError, type PgmErrorCode } from './errors.js';
export { requestGpu, type GpuContext, type GpuRequest, type AdapterSummary } from './gpu/context.js';
export { createEngine, Engine, GenerationRun, importCheckpoint, vocabularyOf, type EngineInterface } from './engine.js';
export {
  ENGINE_OPTIONS,
  GENERATION_OPTIONS,
  IMPORT_OPTIONS,
  type EngineOption,
  type GenerationOption,
} from './options.js';
export { ENCODER_MODES, type EncoderMode } from './sampling/samplers.js';
export type {
  EngineOptions,
  GenerateOptions,
  BatchOptions,
  SequenceOptions,
  SharedOptions,
  InfillSegment,
  StepEvent,
  BatchStepEvent,
  GenerationResult,
  BatchResult,
  SequenceResult,
  GenerationStats,
  LoadPhase,
  LoadProgress,
  ModelStore,
  ModelWeights,
  ImportOptions,
  ImportedModel,
  LocalModel,
  LocalId,
  LocalModelInfo,
  ModelFolder,
} from './types.js';
export { GpuModel, WEIGHT_STORAGES, type GpuModelOptions, type WeightStorage } from './model/gpu-model.js';
export {
  fetchManifest,
  loadModel,
  loadModelFromUrl,
  loadModelFromManifest,
  loadPackagedModel,
  urlFiles,
  LOAD_PHASES,
  MAX_CONFIG_BYTES,
  MAX_MODEL_BYTES,
  MAX_SHARD_BYTES,
  type ModelFiles,
  type LoadedModel,
  type LoadOptions,
} from './weights/load.js';
export { readWeights, type Weights, type HostTensor, type StoredTensor } from './weights/host-tensor.js';
export { cacheStore, clearModelCache, MODEL_CACHE } from './weights/cache.js';
export { localModels } from './weights/local.js';
export { loadLocalModel, localIdOf } from './convert/import.js';
export { DEFAULT_STALL_TIMEOUT, STALL_BYTES, type BodyOptions } from './weights/fetch.js';
export { PACKAGED_MANIFEST } from './weights/packaged.js';
export type { WeightsManifest, ManifestModel } from './weights/manifest.js';
export { Vocabulary } from './text/vocab.js';
export type { ModelConfig, ModelDirConfig } from './weights/config.js';
export type { PgmSequence, MdlmSequence } from './model/inputs.js';
export type { Order, Schedule } from './sampling/schedule.js';
export {
  createWorkerEngine,
  WorkerEngine,
  type WorkerEngineOptions,
  type EngineWorker,
  type WorkerEvent,
} from './worker-engine.js';
