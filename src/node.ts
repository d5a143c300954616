/// <reference types="@webgpu/types" preserve="true" />
/**
 * Node.js entry: WebGPU through the `webgpu` package (Dawn). On machines without a GPU
 * driver it falls back to Chromium's SwiftShader Vulkan driver when that is installed.
 */
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineOn, loadWeights, type Engine, type EngineOptions } from './engine.js';
import { brief, fail } from './errors.js';
import { requestGpu, type GpuContext } from './gpu/context.js';
import { loadModelPath } from './convert/read-node.js';
import { loadModelDir } from './model/load-node.js';
import { findModel, validateManifest } from './model/manifest.js';

export * from './index.js';
export { loadModelDir } from './model/load-node.js';
export { loadModelPath, loadCheckpoint } from './convert/read-node.js';

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
    // An optional peer dependency: browsers never need it, so it is not installed with us.
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') fail('webgpu', 'WebGPU in Node needs the "webgpu" package, which is not installed: npm install webgpu');
    fail('webgpu', `the "webgpu" package could not be loaded (${(e as Error).message}); reinstall it with npm install webgpu`);
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

/** `manifestUrl` as a path on disk, or undefined for an http(s) URL (fetched). */
function manifestPath(manifestUrl: EngineOptions['manifestUrl']): string | undefined {
  if (manifestUrl === undefined) return PACKAGE_MANIFEST;
  if (typeof manifestUrl !== 'string' && !(manifestUrl instanceof URL)) fail('option', `manifestUrl must be a path or a URL, got ${brief(manifestUrl)}`);
  const text = String(manifestUrl);
  if (/^https?:/i.test(text)) return undefined;
  if (/^file:/i.test(text)) return fileURLToPath(text);
  if (/^[a-z][\w+.-]+:/i.test(text)) fail('option', `manifestUrl ${text}: Node reads a manifest from a path, a file: URL or an http(s) URL`);
  return text;
}

/**
 * Node: load a model — a weights-manifest.json id (default: the manifest's default; the
 * manifest is the package's own unless `manifestUrl` names another, on disk or over http),
 * a model directory, a Lightning `.ckpt` (converted in memory, EMA weights), or a URL — and
 * put it on this machine's GPU (or SwiftShader).
 */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  if (typeof options !== 'object' || options === null) fail('option', `createEngine takes an options object, got ${brief(options)}`);
  const { model } = options;
  const progress = options.onProgress && ((loadedBytes: number, totalBytes: number) => options.onProgress!({ loadedBytes, totalBytes }));
  const path = manifestPath(options.manifestUrl);
  let loaded;
  if (typeof model === 'string' && /^https?:/i.test(model)) loaded = await loadWeights(options);
  else if (typeof model === 'string' && (existsSync(model) || model.includes('/') || model.endsWith('.ckpt'))) loaded = await loadModelPath(model, { onProgress: progress });
  else if (path === undefined || (model !== undefined && typeof model !== 'string')) loaded = await loadWeights(options);
  else {
    const text = await readFile(path, 'utf8').catch((e: Error) => fail('io', `${path}: ${e.message}`));
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (e) {
      fail('config', `${path}: not valid JSON (${(e as Error).message})`);
    }
    const entry = findModel(validateManifest(json, path), model);
    loaded = await loadModelDir(resolve(dirname(path), entry.path), { manifestEntry: entry, onProgress: progress });
  }
  return engineOn(options, loaded, requestNodeGpu);
}
