import { fail } from '../errors.js';
import type { GpuMemory } from '../gpu/memory.js';
import { gpuTensor, type GpuDtype, type GpuTensor } from '../gpu/tensor.js';
import { headDim, type ModelConfig } from '../weights/config.js';
import {
  decodeFloats,
  decodeFloatsInto,
  DTYPE_BYTES,
  floatToHalf,
  halfToFloat,
  halvesInto,
} from '../weights/floats.js';
import {
  decoderKeysValues,
  decoderKvLayer,
  decoderKvName,
  isLayerNormParam,
  pairRotaryRows,
  rotaryColumns,
} from './fusion.js';
import { isBuffer } from '../weights/parameters.js';
import { floatsOf, numel, type HostTensor, type StoredTensor, type WeightMap } from '../weights/host-tensor.js';

export const WEIGHT_STORAGES = ['auto', 'f32', 'f16'] as const;

export type WeightStorage = (typeof WEIGHT_STORAGES)[number];

/** Rows [first, first + rows) of a weight, in a buffer of their own. */
export interface RowBlock {
  first: number;
  tensor: GpuTensor;
}

/**
 * Tensors only the host reads: the timestep embedding, the adaLN modulations and the LayerNorms
 * (conditioning.ts turns them into the constants the matmul after each LayerNorm reads).
 */
const hostOnly = (name: string, shape: readonly number[]): boolean =>
  name.startsWith('sigma_map.') || name.includes('adaLN_modulation.') || isLayerNormParam(name, shape);

/** Tensors the kernels read as f16 when stored so: the matmul weights (2-D `*.weight`) and the embedding. */
const halfable = (name: string, shape: readonly number[]): boolean =>
  shape.length === 2 && (name.endsWith('.weight') || name === 'vocab_embed.embedding');

/** Values converted to f16 per step when a tensor is rounded (a fixed working set). */
const CHUNK = 1 << 20;

/** Values [from, from + count) of `t` into `range` as `dtype` (f16: IEEE half bits, two per u32 word). */
function writeValues(
  range: ArrayBuffer,
  dtype: GpuDtype,
  t: HostTensor | StoredTensor,
  from: number,
  count: number,
): void {
  if ('data' in t) {
    const values = t.data.subarray(from, from + count);
    if (dtype === 'f32') new Float32Array(range, 0, count).set(values);
    else halvesInto(new Uint16Array(range, 0, count), values);
    return;
  }
  const size = DTYPE_BYTES[t.dtype];
  const bytes = t.bytes.subarray(from * size, (from + count) * size);
  if ((dtype === 'f16' && t.dtype === 'F16') || (dtype === 'f32' && t.dtype === 'F32'))
    new Uint8Array(range, 0, bytes.length).set(bytes);
  else if (dtype === 'f32') decodeFloatsInto(new Float32Array(range, 0, count), bytes, t.dtype);
  else {
    const out = new Uint16Array(range, 0, count);
    for (let at = 0; at < count; at += CHUNK)
      halvesInto(
        out.subarray(at),
        decodeFloats(bytes.subarray(at * size, Math.min(at + CHUNK, count) * size), t.dtype),
      );
  }
}

/**
 * A model's weights as they arrive, one tensor at a time, each from its own bytes: tensors
 * only the host reads are decoded to float32 here (they are small), every other one goes
 * straight into a GPU buffer, in the dtype `storage` asks for (f16 values decoded by table
 * or kept as f16), laid out as the fused kernels read it (model/fusion.ts: a projection that
 * rotary follows has its rows paired). A weight larger than one storage binding holds (the
 * embedding and the output layer at V = 50258 in f32, under WebGPU's default 128 MiB) is
 * uploaded in blocks of rows, each its own buffer, for the ops that take blocks (`blocks`).
 *
 * The PGM decoder's attn_kv weights are held as float32 until every layer of their group
 * (`kvGroups`) and its kv_norm1 weight have arrived, then fused into one projection and uploaded
 * (fusion.ts's decoderKeysValues): at most one group's, 2D x D floats per layer, at a time.
 */
export class GpuWeights {
  private readonly uploaded = new Map<string, RowBlock[]>();
  private readonly seen = new Set<string>();
  /** attn_kv weights waiting for the rest of their group, by layer (as stored: f16 storage rounds them). */
  private readonly held = new Map<number, HostTensor>();
  /** The host-only tensors, float32. */
  readonly host: WeightMap = new Map();
  /** Parameters taken (host and GPU). */
  parameters = 0;
  /** Some matmul weight sits on the GPU as f16. */
  halfMatmuls = false;

  constructor(
    private readonly memory: GpuMemory,
    private readonly storage: WeightStorage,
    private readonly config: ModelConfig,
    /** The PGM decoder's layers in groups, [first, last] each, whose keys and values one matmul computes. */
    private readonly kvGroups: readonly (readonly [number, number])[],
  ) {}

  /** Take tensor `name`: keep it on the host if only the host reads it, else upload it (or hold it for its fused group). */
  add(name: string, t: HostTensor | StoredTensor): void {
    if (isBuffer(name)) return;
    if (this.seen.has(name)) fail('architecture', `tensor ${name} is given twice`);
    this.seen.add(name);
    this.parameters += numel(t.shape);
    const layer = decoderKvLayer(name);
    if (hostOnly(name, t.shape)) {
      this.host.set(name, { shape: t.shape, data: floatsOf(t) });
      if (name.endsWith('.kv_norm1.weight')) this.fuseKeysValues();
    } else if (layer !== undefined) {
      // As f16 storage keeps it: the fused product is exact in f32 for W as stored.
      const data = floatsOf(t);
      const rounded = this.storage === 'f16' && !('dtype' in t && t.dtype === 'F16');
      this.held.set(layer, { shape: t.shape, data: rounded ? data.map((v) => halfToFloat(floatToHalf(v))) : data });
      this.fuseKeysValues();
    } else this.upload(name, t);
  }

  /** After the last tensor: fails, naming it, if a tensor of a fused group never came. */
  finish(): void {
    for (const [first, last] of this.kvGroups) {
      if (this.uploaded.has(decoderKvName(first, last))) continue;
      for (let layer = first; layer <= last; layer++) {
        for (const name of [`decoder.layers.${layer}.attn_kv.weight`, `decoder.layers.${layer}.kv_norm1.weight`]) {
          if (!this.seen.has(name)) fail('architecture', `the model has no tensor ${name}`);
        }
      }
    }
  }

  /** Upload each group of decoder layers whose attn_kv and kv_norm1 weights have all arrived as one projection. */
  private fuseKeysValues(): void {
    for (const [first, last] of this.kvGroups) {
      const name = decoderKvName(first, last);
      if (this.uploaded.has(name)) continue;
      const layers = Array.from({ length: last - first + 1 }, (_, i) => first + i);
      if (!layers.every((l) => this.held.has(l) && this.host.has(`decoder.layers.${l}.kv_norm1.weight`))) continue;
      const get = (part: string): HostTensor => this.host.get(part) ?? this.held.get(decoderKvLayer(part)!)!;
      this.upload(name, decoderKeysValues(this.config, first, last, get));
      for (const l of layers) this.held.delete(l);
    }
  }

  /** Upload tensor `name`, laid out for the fused kernels, in blocks of rows if it is over one binding. */
  private upload(name: string, given: HostTensor | StoredTensor): void {
    const rotated = rotaryColumns(this.config, name);
    const t = rotated ? pairRotaryRows(given, headDim(this.config), rotated) : given;
    const stored = 'dtype' in t ? t.dtype : 'F32';
    const half = halfable(name, t.shape) && (this.storage === 'f16' || (this.storage === 'auto' && stored === 'F16'));
    const dtype: GpuDtype = half ? 'f16' : 'f32';
    if (half && name !== 'vocab_embed.embedding') this.halfMatmuls = true;
    const cols = t.shape[t.shape.length - 1] ?? 1;
    const rows = numel(t.shape) / cols;
    const rowBytes = cols * (half ? 2 : 4);
    const { maxStorageBufferBindingSize: binding, maxBufferSize } = this.memory.device.limits;
    const most = Math.floor(Math.min(binding, maxBufferSize) / rowBytes);
    if (most < 1)
      fail(
        'webgpu',
        `tensor ${name}: one row of ${cols} ${dtype} values is over this device's maxStorageBufferBindingSize (${binding})`,
      );
    const per = Math.ceil(rows / Math.ceil(rows / most));
    const blocks: RowBlock[] = [];
    for (let first = 0; first < rows; first += per) {
      const n = Math.min(per, rows - first);
      const label = per < rows ? `${name}[${first}:${first + n}]` : name;
      const buffer = this.memory.filled(label, n * rowBytes, GPUBufferUsage.STORAGE, (range) =>
        writeValues(range, dtype, t, first * cols, n * cols),
      );
      blocks.push({ first, tensor: gpuTensor(label, buffer, per < rows ? [n, cols] : t.shape, dtype) });
    }
    this.uploaded.set(name, blocks);
  }

  /** The names of the weights on the GPU (fusion.ts's among them). */
  names(): string[] {
    return [...this.uploaded.keys()];
  }

  /** Weight `name` in one buffer. */
  get(name: string): GpuTensor {
    const blocks = this.blocks(name);
    if (blocks.length > 1) {
      fail(
        'webgpu',
        `tensor ${name} is over this device's maxStorageBufferBindingSize (${this.memory.device.limits.maxStorageBufferBindingSize}) and sits in ${blocks.length} blocks of rows, which the ops reading it do not take`,
      );
    }
    return blocks[0].tensor;
  }

  /** Weight `name` in blocks of rows (one when it fits one binding). */
  blocks(name: string): readonly RowBlock[] {
    return this.uploaded.get(name) ?? fail('architecture', `the model has no tensor ${name}`);
  }
}
