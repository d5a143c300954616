/// <reference types="@webgpu/types" preserve="true" />
export { PgmError, type PgmErrorCode } from './errors.js';
export { requestGpu, type GpuContext, type GpuRequest, type AdapterSummary } from './gpu/context.js';
export { createEngine, Engine, GenerationRun, vocabularyOf } from './engine.js';
export { GENERATION_OPTIONS, type GenerationOption } from './options.js';
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
  LoadProgress,
  ModelWeights,
} from './types.js';
export { GpuModel, WEIGHT_STORAGES, type GpuModelOptions, type WeightStorage } from './model/gpu-model.js';
export { loadModel, loadModelFromUrl, loadModelFromManifest, loadPackagedModel, urlFiles, type ModelFiles, type LoadedModel } from './model/load.js';
export { readWeights, type Weights, type HostTensor, type StoredTensor } from './model/tensor.js';
export { PACKAGED_MANIFEST } from './model/packaged.js';
export type { WeightsManifest, ManifestModel } from './model/manifest.js';
export { Vocabulary } from './model/vocab.js';
export type { ModelConfig, ModelDirConfig } from './model/config.js';
export type { PgmSequence, MdlmSequence } from './model/inputs.js';
export type { Order, Schedule } from './sampling/schedule.js';
