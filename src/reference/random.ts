/**
 * Deterministic random models for tests: a small ModelConfig and a WeightMap with every
 * parameter the config needs. The adaLN layers are far from their zero initialisation so
 * that shifts, scales and gates all change the result (a test with zero gates would not
 * see a broken attention or MLP).
 */
import { expectedParameters } from '../weights/parameters.js';
import type { ModelConfig } from '../weights/config.js';
import { numel, type WeightMap } from '../weights/host-tensor.js';

/** A seeded generator of uniform numbers in [0, 1) (mulberry32). */
export function seededUniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A seeded generator of standard normal numbers (Box-Muller over `seededUniform`). */
export function seededNormal(seed: number): () => number {
  const uniform = seededUniform(seed);
  return () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
}

/** A small config (V = 97, D = 32, 4 heads, L = 64) with `overrides` applied; BOS = V-2, mask = V-1. */
export function tinyConfig(arch: ModelConfig['arch'], overrides: Partial<ModelConfig> = {}): ModelConfig {
  const vocabSize = overrides.vocabSize ?? 97;
  const hiddenSize = overrides.hiddenSize ?? 32;
  return {
    arch,
    vocabSize,
    hiddenSize,
    nHeads: 4,
    condDim: 16,
    mlpDim: 4 * hiddenSize,
    length: 64,
    encoderBlocks: arch === 'pgm' ? 2 : 0,
    decoderBlocks: arch === 'pgm' ? 2 : 0,
    nBlocks: arch === 'mdlm' ? 2 : 0,
    preQueryMode: 'learn+freqs',
    queryProcessMode: 'linear',
    maskId: vocabSize - 1,
    bosId: vocabSize - 2,
    pNucleus: 1,
    ...overrides,
  };
}

/** `[mean, std]` of a parameter's random values. */
function initialisation(name: string, fanIn: number): [number, number] {
  if (/norm(\d|_final)?\.weight$/.test(name)) return [1, 0.1];
  if (name.includes('adaLN_modulation')) return [0, name.endsWith('.bias') ? 0.3 : 0.5 / Math.sqrt(fanIn)];
  if (name.endsWith('.bias') || name.endsWith('base_embedding')) return [0, 0.1];
  if (name === 'vocab_embed.embedding') return [0, 1];
  return [0, 1 / Math.sqrt(fanIn)];
}

/**
 * Random weights for `config`, the same for the same `seed`. Linear weights have standard
 * deviation `1/sqrt(fan_in)`, norm weights are near 1, biases and the base embedding are
 * small, and the adaLN layers give shifts, scales and gates of order 0.5.
 */
export function randomWeights(config: ModelConfig, seed: number): WeightMap {
  const normal = seededNormal(seed);
  const weights: WeightMap = new Map();
  for (const [name, shape] of expectedParameters(config)) {
    const [offset, std] = initialisation(name, shape[shape.length - 1]);
    const data = new Float32Array(numel(shape));
    for (let i = 0; i < data.length; i++) data[i] = offset + std * normal();
    weights.set(name, { shape, data });
  }
  return weights;
}
