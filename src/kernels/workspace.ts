import type { GpuMemory } from '../gpu/memory.js';
import type { Kernel, KernelCache } from '../gpu/kernel.js';
import type { KernelPlan } from './plan.js';

/**
 * Which per-sequence row count a kernel walks: the clean tokens, the queries, or the fresh
 * rows (the clean tokens an incremental pass encodes, packed: the last j_b of the clean set,
 * which joined since the previous pass, then any kept rows the adaptive policy re-encodes).
 */
export const Rows = { Clean: 0, Query: 1, Fresh: 2 } as const;
export type Rows = (typeof Rows)[keyof typeof Rows];

/** Current padded batch shape, mirrored in the `dims` uniform. */
export interface BatchShape {
  batch: number;
  maxClean: number;
  maxQuery: number;
  /** The most fresh rows a sequence may have: the grids of the fresh rows' kernels cover them. */
  maxFresh: number;
}

/**
 * What every kernel wrapper needs: the device, the tracked allocator, the pipeline cache and
 * the two buffers that describe the current batch (`dims`, `lengths`).
 */
export interface Workspace {
  device: GPUDevice;
  memory: GpuMemory;
  kernels: KernelCache;
  /** Rows reserved per sequence (the model length L). */
  seqStride: number;
  maxBatch: number;
  dims: GPUBuffer;
  lengths: GPUBuffer;
  /** Bound where a variant does not read a binding. */
  unused: GPUBuffer;
  shape: BatchShape;
  /** Kernel variants measured fastest on this adapter (tuning.ts); absent: the SwiftShader-friendly ones. */
  plan?: KernelPlan;
}

/** A workspace for `maxBatch` sequences of `seqStride` rows, its dims and lengths buffers allocated from `memory`. */
export function createWorkspace(
  memory: GpuMemory,
  kernels: KernelCache,
  seqStride: number,
  maxBatch: number,
): Workspace {
  return {
    device: memory.device,
    memory,
    kernels,
    seqStride,
    maxBatch,
    dims: memory.create('dims', 16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
    // Four counts per sequence, then its re-encoded rows (common.wgsl). COPY_SRC: tests read
    // back what the adaptive pick writes.
    lengths: memory.create(
      'lengths',
      4 * maxBatch * (4 + seqStride),
      GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    ),
    unused: memory.create('unused', 16, GPUBufferUsage.STORAGE),
    shape: { batch: 0, maxClean: 0, maxQuery: 0, maxFresh: 0 },
  };
}

/** A uniform buffer holding `kernel`'s `struct` (default `Params`), its fields by name. */
export function paramsBuffer(
  ws: Workspace,
  kernel: Kernel,
  label: string,
  values: Readonly<Record<string, number>>,
  struct?: string,
): GPUBuffer {
  return ws.memory.upload(label, new Uint8Array(kernel.pack(values, struct)), GPUBufferUsage.UNIFORM);
}

/** The bindings every kernel of the packed token sets declares first (common.wgsl). */
export const batchBindings = (ws: Workspace): { dims: GPUBuffer; lengths: GPUBuffer } => ({
  dims: ws.dims,
  lengths: ws.lengths,
});

/**
 * Set the batch shape for the next forward pass: writes `dims` and `lengths`. `freshLengths`
 * (default: none) are the clean tokens of each sequence an incremental pass encodes, the last
 * of its clean set (they are its joined rows too); `reencodable` the most kept rows each may
 * add to them on the GPU (the adaptive policy), which the fresh rows' grids make room for.
 */
export function setBatchShape(
  ws: Workspace,
  cleanLengths: readonly number[],
  queryLengths: readonly number[],
  freshLengths: readonly number[] = [],
  reencodable: readonly number[] = [],
): void {
  const batch = cleanLengths.length;
  const most = (counts: readonly number[]) => (counts.length ? Math.max(...counts) : 0);
  ws.shape = {
    batch,
    maxClean: most(cleanLengths),
    maxQuery: most(queryLengths),
    maxFresh: most(freshLengths.map((m, b) => m + (reencodable[b] ?? 0))),
  };
  ws.device.queue.writeBuffer(ws.dims, 0, new Uint32Array([batch, ws.seqStride, ws.shape.maxClean, ws.shape.maxQuery]));
  const lengths = new Uint32Array(4 * batch);
  lengths.set(cleanLengths, 0);
  if (queryLengths.length) lengths.set(queryLengths, batch);
  if (freshLengths.length) {
    lengths.set(freshLengths, 2 * batch);
    lengths.set(freshLengths, 3 * batch);
  }
  ws.device.queue.writeBuffer(ws.lengths, 0, lengths);
}

export const rowsOf = (ws: Workspace, kind: Rows): number =>
  [ws.shape.maxClean, ws.shape.maxQuery, ws.shape.maxFresh][kind];

/** The shape of an activation: `width` columns for each of the L rows of every sequence. */
export const activationShape = (ws: Workspace, width: number): number[] => [ws.maxBatch, ws.seqStride, width];

export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);
