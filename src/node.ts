/**
 * Node.js entry: WebGPU through the `webgpu` package (Dawn). On machines without a GPU
 * driver it falls back to Chromium's SwiftShader Vulkan driver when that is installed.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEngine as coreCreateEngine, engineOn, type Engine, type EngineOptions } from './engine.js';
import { fail } from './errors.js';
import { requestGpu, type GpuContext } from './gpu/context.js';
import { loadModelDir, loadModelPath } from './model/load-node.js';
import { findModel, validateManifest } from './model/manifest.js';

export * from './index.js';
export { loadModelDir, loadModelPath, loadCheckpoint } from './model/load-node.js';

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

const PACKAGE_MANIFEST = fileURLToPath(new URL('../weights-manifest.json', import.meta.url));

/**
 * Node: load a model — a weights-manifest.json id (default: the manifest's default), a
 * model directory, a Lightning `.ckpt` (converted in memory, EMA weights), or a URL —
 * and put it on this machine's GPU (or SwiftShader).
 */
export async function createEngine(options: Omit<EngineOptions, 'model'> & { model?: EngineOptions['model']; manifestPath?: string }): Promise<Engine> {
  const { model } = options;
  if (typeof model !== 'string' && model !== undefined) return engineOn(options, model, requestNodeGpu);
  if (model !== undefined && /^https?:/.test(model)) return coreCreateEngine({ ...options, model, gpu: options.gpu ?? (await requestNodeGpu()) });
  const progress = options.onProgress && ((loadedBytes: number, totalBytes: number) => options.onProgress!({ loadedBytes, totalBytes }));
  let loaded;
  if (model !== undefined && (existsSync(model) || model.includes('/') || model.endsWith('.ckpt'))) {
    loaded = await loadModelPath(model, { onProgress: progress });
  } else {
    const manifestPath = options.manifestPath ?? PACKAGE_MANIFEST;
    const text = await readFile(manifestPath, 'utf8').catch((e: Error) => fail('io', `${manifestPath}: ${e.message}`));
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      fail('config', `${manifestPath}: not valid JSON (${(e as Error).message})`);
    }
    const entry = findModel(validateManifest(json, manifestPath), model);
    loaded = await loadModelDir(resolve(dirname(manifestPath), entry.path), { manifestEntry: entry, onProgress: progress });
  }
  return engineOn(options, loaded, requestNodeGpu);
}
