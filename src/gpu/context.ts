import { PgmError, brief, fail } from '../errors.js';

/** What the engine knows about its adapter and device. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  description: string;
  isFallbackAdapter: boolean;
  features: string[];
  maxStorageBufferBindingSize: number;
  maxBufferSize: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
}

export interface GpuContext {
  device: GPUDevice;
  adapter: AdapterSummary;
  /** Resolves when the device is lost (destroyed or removed). */
  lost: Promise<GPUDeviceLostInfo>;
  /** Keeps the GPU entry point alive (Node's `webgpu` aborts if it is garbage-collected). */
  readonly gpu: GPU;
  /** Whether models on this device nap while they wait for the GPU (nap.ts); default: in Node, where waiting busy-loops the JavaScript thread. */
  readonly napWhileWaiting?: boolean;
}

const WANTED_LIMITS = [
  'maxStorageBufferBindingSize',
  'maxBufferSize',
  'maxComputeWorkgroupStorageSize',
  'maxComputeInvocationsPerWorkgroup',
  'maxComputeWorkgroupSizeX',
  'maxStorageBuffersPerShaderStage',
] as const;

export interface GpuRequest {
  /** Default `navigator.gpu`; Node passes the `webgpu` package's. */
  gpu?: GPU;
  powerPreference?: GPUPowerPreference;
  /**
   * 'adapter' (default): the device asks for the adapter's own limits where they exceed
   * WebGPU's defaults (larger buffers, more workgroup memory); 'default': the spec's default
   * limits (128 MiB per storage binding, 256 MiB per buffer, ...), as on many phones and
   * integrated GPUs: every model runs within them.
   */
  limits?: 'adapter' | 'default';
}

/** Request an adapter and a device with its features the kernels use (f16, subgroups, timestamps). */
export async function requestGpu(options: GpuRequest = {}): Promise<GpuContext> {
  if (options.limits !== undefined && options.limits !== 'adapter' && options.limits !== 'default')
    fail('option', `limits must be 'adapter' or 'default', got ${brief(options.limits)}`);
  const gpu = options.gpu ?? (typeof navigator !== 'undefined' ? navigator.gpu : undefined);
  if (!gpu) {
    fail(
      'webgpu',
      'WebGPU is not available here (navigator.gpu is undefined): use a browser with WebGPU enabled on a secure origin (https or localhost), or pgm-webgpu/node in Node.js',
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter)
    fail(
      'webgpu',
      "no WebGPU adapter found: the GPU driver is missing or blocked (in Node, install libvulkan1 and a Vulkan driver, e.g. Chromium's SwiftShader)",
    );
  const requiredLimits: Record<string, number> = {};
  if (options.limits !== 'default') for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures = (['timestamp-query', 'shader-f16', 'subgroups'] as GPUFeatureName[]).filter((f) =>
    adapter.features.has(f),
  );
  let device: GPUDevice;
  try {
    device = await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    throw new PgmError('webgpu', `could not create a WebGPU device: ${(e as Error).message}`, { cause: e });
  }
  const info = adapter.info;
  return {
    gpu,
    device,
    lost: device.lost,
    adapter: {
      vendor: info?.vendor ?? '',
      architecture: info?.architecture ?? '',
      description: info?.description ?? '',
      isFallbackAdapter: Boolean(
        (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter ??
        (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter,
      ),
      features: [...adapter.features].sort(),
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    },
  };
}
