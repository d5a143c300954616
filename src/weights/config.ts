import { brief, fail } from '../errors.js';

export type Architecture = 'pgm' | 'mdlm';
export const PRE_QUERY_MODES = ['learn', 'learn+freqs', 'learn+freqs+mean', 'learn+freqs+logsumexp'] as const;
export type PreQueryMode = (typeof PRE_QUERY_MODES)[number];
/** What a pre-query mode adds to the base embedding: the query position's sinusoid, a statistic of the encoder output. */
export const queryInitTerms = (mode: PreQueryMode): { freqs: boolean; statistic?: 'mean' | 'logsumexp' } => ({
  freqs: mode !== 'learn',
  statistic: mode === 'learn+freqs+mean' ? 'mean' : mode === 'learn+freqs+logsumexp' ? 'logsumexp' : undefined,
});
export const QUERY_PROCESS_MODES = ['linear', 'mlp4'] as const;
export type QueryProcessMode = (typeof QUERY_PROCESS_MODES)[number];

/** The shape of a model, as written to `config.json` next to its safetensors shards. */
export interface ModelConfig {
  arch: Architecture;
  vocabSize: number; // V: rows of vocab_embed.embedding and output_layer.linear
  hiddenSize: number; // D
  nHeads: number; // H
  condDim: number; // C
  mlpDim: number; // F
  length: number; // L
  /** PGM only. */
  encoderBlocks: number;
  /** PGM only. */
  decoderBlocks: number;
  /** MDLM only. */
  nBlocks: number;
  preQueryMode: PreQueryMode;
  queryProcessMode: QueryProcessMode;
  maskId: number;
  bosId: number;
  /** Default nucleus mass from the checkpoint's sampling config (1 = off). */
  pNucleus: number;
  /**
   * Reduced vocabulary: `vocabMap[i]` is the GPT-2 id of model id i (length V, the mask
   * entry is -1). Absent for full-vocabulary models, where model id == GPT-2 id.
   */
  vocabMap?: number[];
}

export interface ShardInfo {
  file: string;
  size: number;
  sha256: string;
}

/** The content of `config.json` in a model directory. */
export interface ModelDirConfig {
  format: 'pgm-webgpu';
  formatVersion: 1;
  model: ModelConfig;
  /** Storage dtype of the floating-point tensors in the shards. */
  dtype: 'f32' | 'f16';
  shards: ShardInfo[];
  /** Free-form provenance: source file, ema or raw, converter version, hyper_parameters. */
  source?: Record<string, unknown>;
}

const isInt = (v: unknown, min = 0): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min;

/** Validate a parsed ModelConfig; `where` names the file in error messages. */
export function validateModelConfig(c: unknown, where: string): ModelConfig {
  const bad = (why: string): never => fail('config', `${where}: ${why}`);
  if (typeof c !== 'object' || c === null) bad('model config is not an object');
  const m = c as Record<string, unknown>;
  if (m.arch !== 'pgm' && m.arch !== 'mdlm') bad(`unknown architecture ${brief(m.arch)} (expected "pgm" or "mdlm")`);
  for (const k of ['vocabSize', 'hiddenSize', 'nHeads', 'condDim', 'mlpDim', 'length', 'maskId', 'bosId'] as const) {
    if (!isInt(m[k], k === 'maskId' || k === 'bosId' ? 0 : 1))
      bad(`"${k}" must be a positive integer, got ${brief(m[k])}`);
  }
  for (const k of ['encoderBlocks', 'decoderBlocks', 'nBlocks'] as const) {
    if (!isInt(m[k], 0)) bad(`"${k}" must be a non-negative integer, got ${brief(m[k])}`);
  }
  const cfg = m as unknown as ModelConfig;
  if (cfg.hiddenSize % cfg.nHeads !== 0) bad(`hiddenSize ${cfg.hiddenSize} is not divisible by nHeads ${cfg.nHeads}`);
  if ((cfg.hiddenSize / cfg.nHeads) % 2 !== 0)
    bad(`head dim ${cfg.hiddenSize / cfg.nHeads} must be even for rotary embeddings`);
  if (cfg.hiddenSize % 2 !== 0) bad(`hiddenSize ${cfg.hiddenSize} must be even`);
  if (cfg.arch === 'pgm') {
    if (cfg.encoderBlocks < 1 || cfg.decoderBlocks < 1) bad('a PGM needs at least one encoder and one decoder block');
    if (!(PRE_QUERY_MODES as readonly string[]).includes(cfg.preQueryMode))
      bad(`unknown preQueryMode ${brief(cfg.preQueryMode)}`);
    if (!(QUERY_PROCESS_MODES as readonly string[]).includes(cfg.queryProcessMode))
      bad(`unknown queryProcessMode ${brief(cfg.queryProcessMode)}`);
  } else if (cfg.nBlocks < 1) bad('an MDLM needs at least one block');
  if (cfg.maskId >= cfg.vocabSize || cfg.bosId >= cfg.vocabSize)
    bad(`maskId/bosId must be < vocabSize ${cfg.vocabSize}`);
  if (typeof cfg.pNucleus !== 'number' || !(cfg.pNucleus > 0 && cfg.pNucleus <= 1))
    bad(`"pNucleus" must be in (0, 1], got ${brief(cfg.pNucleus)}`);
  if (cfg.vocabMap !== undefined) {
    if (
      !Array.isArray(cfg.vocabMap) ||
      cfg.vocabMap.length !== cfg.vocabSize ||
      !cfg.vocabMap.every((v) => Number.isInteger(v) && v >= -1)
    ) {
      bad(`"vocabMap" must be an array of ${cfg.vocabSize} integer GPT-2 ids (-1 for the mask)`);
    }
  }
  return cfg;
}

/** Head dimension. */
export const headDim = (c: ModelConfig): number => c.hiddenSize / c.nHeads;
