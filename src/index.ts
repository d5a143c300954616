export { PgmError, type PgmErrorCode } from './errors.js';
export { requestGpu, type GpuContext, type AdapterSummary } from './gpu/context.js';
export type { ModelConfig, ModelDirConfig } from './model/config.js';
export type { PgmSequence, MdlmSequence } from './model/inputs.js';
