import type { GpuMemory } from '../gpu/memory.js';
import type { KernelCache } from '../gpu/kernel.js';
import type { KernelPlan } from './plan.js';

/** Which per-sequence row count a kernel walks: the clean tokens or the queries. */
export const Rows = { Clean: 0, Query: 1 } as const;
export type Rows = (typeof Rows)[keyof typeof Rows];

/** Current padded batch shape, mirrored in the `dims` uniform. */
export interface BatchShape {
  batch: number;
  maxClean: number;
  maxQuery: number;
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
export function createWorkspace(memory: GpuMemory, kernels: KernelCache, seqStride: number, maxBatch: number): Workspace {
  return {
    device: memory.device,
    memory,
    kernels,
    seqStride,
    maxBatch,
    dims: memory.create('dims', 16, GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST),
    lengths: memory.create('lengths', 8 * maxBatch, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST),
    unused: memory.create('unused', 16, GPUBufferUsage.STORAGE),
    shape: { batch: 0, maxClean: 0, maxQuery: 0 },
  };
}

/** A uniform buffer with `u32s` followed by `f32s`, written once. */
export function paramsBuffer(ws: Workspace, label: string, u32s: readonly number[], f32s: readonly number[] = []): GPUBuffer {
  const data = new ArrayBuffer(Math.max(16, Math.ceil((u32s.length + f32s.length) * 4 / 16) * 16));
  new Uint32Array(data, 0, u32s.length).set(u32s);
  new Float32Array(data, u32s.length * 4, f32s.length).set(f32s);
  return ws.memory.upload(label, new Uint8Array(data), GPUBufferUsage.UNIFORM);
}

/** Set the batch shape for the next forward pass: writes `dims` and `lengths`. */
export function setBatchShape(ws: Workspace, cleanLengths: readonly number[], queryLengths: readonly number[]): void {
  const batch = cleanLengths.length;
  ws.shape = {
    batch,
    maxClean: Math.max(...cleanLengths),
    maxQuery: queryLengths.length ? Math.max(...queryLengths) : 0,
  };
  ws.device.queue.writeBuffer(ws.dims, 0, new Uint32Array([batch, ws.seqStride, ws.shape.maxClean, ws.shape.maxQuery]));
  const lengths = new Uint32Array(2 * batch);
  lengths.set(cleanLengths, 0);
  lengths.set(queryLengths.length ? queryLengths : new Array(batch).fill(0), batch);
  ws.device.queue.writeBuffer(ws.lengths, 0, lengths);
}

export const rowsOf = (ws: Workspace, kind: Rows): number => (kind === Rows.Clean ? ws.shape.maxClean : ws.shape.maxQuery);

/** The shape of an activation: `width` columns for each of the L rows of every sequence. */
export const activationShape = (ws: Workspace, width: number): number[] => [ws.maxBatch, ws.seqStride, width];

export const ceilDiv = (a: number, b: number): number => Math.ceil(a / b);
