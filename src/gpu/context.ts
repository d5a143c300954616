import { PgmError, fail } from '../errors.js';

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

/**
 * Request an adapter and a device with the adapter's full limits for the kernels
 * that need them. `gpu` defaults to `navigator.gpu`; Node passes the `webgpu` package's.
 */
export async function requestGpu(options: { gpu?: GPU; powerPreference?: GPUPowerPreference } = {}): Promise<GpuContext> {
  const gpu = options.gpu ?? (typeof navigator !== 'undefined' ? navigator.gpu : undefined);
  if (!gpu) {
    fail('webgpu', 'WebGPU is not available here (navigator.gpu is undefined): use a browser with WebGPU enabled on a secure origin (https or localhost), or pgm-webgpu/node in Node.js');
  }
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (!adapter) fail('webgpu', 'no WebGPU adapter found: the GPU driver is missing or blocked (in Node, install libvulkan1 and a Vulkan driver, e.g. Chromium\'s SwiftShader)');
  const requiredLimits: Record<string, number> = {};
  for (const name of WANTED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const requiredFeatures = (['timestamp-query', 'shader-f16', 'subgroups'] as GPUFeatureName[]).filter((f) => adapter.features.has(f));
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
      isFallbackAdapter: Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter ?? (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter),
      features: [...adapter.features].sort(),
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeWorkgroupStorageSize: device.limits.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: device.limits.maxComputeInvocationsPerWorkgroup,
    },
  };
}
