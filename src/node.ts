/**
 * Node.js entry: WebGPU through the `webgpu` package (Dawn). On machines without a GPU
 * driver it falls back to Chromium's SwiftShader Vulkan driver when that is installed.
 */
import { existsSync, readdirSync } from 'node:fs';
import { fail } from './errors.js';
import { requestGpu, type GpuContext } from './gpu/context.js';

export * from './index.js';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** No GPU device node (DRM render node or NVIDIA): Mesa's ICDs may be installed but have nothing to drive. */
function noGpuDevice(): boolean {
  const dri = existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
  return !dri && !existsSync('/dev/nvidia0');
}

let nodeGpu: GPU | undefined;

/** The `webgpu` package's GPU object, created once per process and kept alive. */
export async function getNodeGpu(): Promise<GPU> {
  if (nodeGpu) return nodeGpu;
  if (!process.env.VK_ICD_FILENAMES && noGpuDevice() && existsSync(SWIFTSHADER_ICD)) {
    process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  }
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let mod: typeof import('webgpu');
  try {
    mod = await import('webgpu');
  } catch (e) {
    fail('webgpu', `the "webgpu" package could not be loaded (${(e as Error).message}); run npm install`);
  }
  Object.assign(globalThis, mod.globals);
  nodeGpu = mod.create([]);
  return nodeGpu;
}

/** A device on this machine's GPU (or SwiftShader). */
export async function requestNodeGpu(): Promise<GpuContext> {
  return requestGpu({ gpu: await getNodeGpu() });
}
