import { fail } from '../errors.js';
import { napWhile } from './nap.js';

/**
 * Every GPU buffer the engine creates goes through here, so the engine can say how many
 * bytes it holds (`bytes`, `peak`) and free all of them at once.
 */
export class GpuMemory {
  private readonly live = new Map<GPUBuffer, number>();
  bytes = 0;
  peak = 0;

  /** `naps`: readBuffer naps while it waits (nap.ts; Node's `webgpu` busy-polls). */
  constructor(readonly device: GPUDevice, readonly naps = false) {}

  create(label: string, size: number, usage: GPUBufferUsageFlags): GPUBuffer {
    const limits = this.device.limits;
    const padded = Math.max(16, Math.ceil(size / 16) * 16);
    if (padded > limits.maxBufferSize) {
      fail('webgpu', `buffer "${label}" needs ${padded} bytes, over this adapter's maxBufferSize (${limits.maxBufferSize}); use a smaller batch or model length`);
    }
    if (usage & GPUBufferUsage.STORAGE && padded > limits.maxStorageBufferBindingSize) {
      fail('webgpu', `buffer "${label}" needs ${padded} bytes, over this adapter's maxStorageBufferBindingSize (${limits.maxStorageBufferBindingSize}); use a smaller batch or model length`);
    }
    const buffer = this.device.createBuffer({ label, size: padded, usage });
    this.live.set(buffer, padded);
    this.bytes += padded;
    this.peak = Math.max(this.peak, this.bytes);
    return buffer;
  }

  /** A storage buffer initialised with `data`. */
  upload(label: string, data: ArrayBufferView, usage: GPUBufferUsageFlags = GPUBufferUsage.STORAGE): GPUBuffer {
    const buffer = this.create(label, data.byteLength, usage | GPUBufferUsage.COPY_DST);
    this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return buffer;
  }

  release(buffer: GPUBuffer): void {
    const size = this.live.get(buffer);
    if (size === undefined) return;
    this.live.delete(buffer);
    this.bytes -= size;
    buffer.destroy();
  }

  releaseAll(): void {
    for (const buffer of [...this.live.keys()]) this.release(buffer);
  }
}

/**
 * Copy `size` bytes of a storage buffer to the host. The copy is appended to `encoder`
 * (default: a new one) and submitted with it, so work + readback cost one submit.
 */
export async function readBuffer(memory: GpuMemory, source: GPUBuffer, size: number, encoder?: GPUCommandEncoder): Promise<ArrayBuffer> {
  const device = memory.device;
  const staging = memory.create('readback', size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
  try {
    encoder ??= device.createCommandEncoder({ label: 'readback' });
    encoder.copyBufferToBuffer(source, 0, staging, 0, Math.ceil(size / 4) * 4);
    device.queue.submit([encoder.finish()]);
    const mapped = staging.mapAsync(GPUMapMode.READ, 0, Math.ceil(size / 4) * 4);
    await (memory.naps ? napWhile(mapped) : mapped);
    return staging.getMappedRange(0, Math.ceil(size / 4) * 4).slice(0, size);
  } finally {
    memory.release(staging);
  }
}
