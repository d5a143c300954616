import { decodeFloats, type SafetensorsDtype } from './floats.js';

/** A host-side tensor: row-major float32 data with a shape. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

/** A tensor as a model file stores it: its shape and its row-major little-endian bytes of `dtype`. */
export interface StoredTensor {
  shape: number[];
  dtype: SafetensorsDtype;
  bytes: Uint8Array;
}

/** Named model parameters, keyed by state_dict name without the `backbone.` prefix. */
export type WeightMap = Map<string, HostTensor>;

/**
 * A model's tensors by name, each once, as float32 values or as stored: a map in memory (a
 * converter's, a test's), or a model directory read shard by shard while it is iterated, so
 * that no more than one shard is in memory at a time (`loadModel`).
 */
export type Weights =
  Iterable<readonly [string, HostTensor | StoredTensor]> | AsyncIterable<readonly [string, HostTensor | StoredTensor]>;

/** `v` is Weights: a Map or another iterable of tensors, sync or async. */
export const isWeights = (v: unknown): v is Weights =>
  v instanceof Map ||
  (typeof v === 'object' &&
    v !== null &&
    (typeof (v as Iterable<unknown>)[Symbol.iterator] === 'function' ||
      typeof (v as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function'));

export const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

/** A tensor's values as float32 (a copy for stored tensors). */
export const floatsOf = (t: HostTensor | StoredTensor): Float32Array =>
  'data' in t ? t.data : decodeFloats(t.bytes, t.dtype);

/** Every tensor of `weights` as float32 on the host (the reference forward, tests, inspection). */
export async function readWeights(weights: Weights): Promise<WeightMap> {
  const out: WeightMap = new Map();
  for await (const [name, t] of weights) out.set(name, { shape: t.shape, data: floatsOf(t) });
  return out;
}
