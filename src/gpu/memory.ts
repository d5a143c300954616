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
  constructor(
    readonly device: GPUDevice,
    readonly naps = false,
  ) {}

  /**
   * A buffer of `size` bytes (padded to 16). One over the device's limits is a PgmError naming
   * the limit; `hint` says what would make it fit. `mappedAtCreation`: see `filled`.
   */
  create(
    label: string,
    size: number,
    usage: GPUBufferUsageFlags,
    options: { hint?: string; mappedAtCreation?: boolean } = {},
  ): GPUBuffer {
    const limits = this.device.limits;
    const padded = Math.max(16, Math.ceil(size / 16) * 16);
    const over = (limit: string, value: number) =>
      fail(
        'webgpu',
        `buffer "${label}" needs ${padded} bytes, over this device's ${limit} (${value})${options.hint ? `; ${options.hint}` : ''}`,
      );
    if (padded > limits.maxBufferSize) over('maxBufferSize', limits.maxBufferSize);
    if (usage & GPUBufferUsage.STORAGE && padded > limits.maxStorageBufferBindingSize)
      over('maxStorageBufferBindingSize', limits.maxStorageBufferBindingSize);
    const buffer = this.device.createBuffer({
      label,
      size: padded,
      usage,
      mappedAtCreation: options.mappedAtCreation ?? false,
    });
    this.live.set(buffer, padded);
    this.bytes += padded;
    this.peak = Math.max(this.peak, this.bytes);
    return buffer;
  }

  /**
   * A buffer whose contents `fill` writes into its mapped range at creation: values are
   * decoded straight into memory the GPU copies from, with no host copy of their own. An
   * empty submit follows, so that the staging memory Dawn copies from is freed as soon as the
   * copy is done, not after a whole model's buffers (which held twice the weights on the host).
   */
  filled(label: string, size: number, usage: GPUBufferUsageFlags, fill: (range: ArrayBuffer) => void): GPUBuffer {
    const buffer = this.create(label, size, usage, { mappedAtCreation: true });
    try {
      fill(buffer.getMappedRange());
      buffer.unmap();
    } catch (e) {
      this.release(buffer);
      throw e;
    }
    this.device.queue.submit([]);
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
export async function readBuffer(
  memory: GpuMemory,
  source: GPUBuffer,
  size: number,
  encoder?: GPUCommandEncoder,
): Promise<ArrayBuffer> {
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
