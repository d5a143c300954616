/**
 * Node.js entry: WebGPU through the `webgpu` package (Dawn). On machines without a GPU
 * device it runs on a CPU adapter: lavapipe (Mesa 25, which scripts/setup.sh unpacks into
 * .lavapipe/) when installed, else Chromium's SwiftShader Vulkan driver;
 * PGM_WEBGPU_ADAPTER=llvmpipe|swiftshader picks one.
 */
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { engineOn, loadOptions, loadWeights, type Engine } from './engine.js';
import type { EngineOptions } from './types.js';
import { PgmError, brief, fail } from './errors.js';
import { replaceFile } from './convert/sink-node.js';
import { requestGpu, type GpuContext, type GpuRequest } from './gpu/context.js';
import { usePlanFile, type PlanFile } from './tuning/plan-store.js';
import { isLocalModel } from './convert/import.js';
import { loadModelPath } from './convert/read-node.js';
import { diskFiles, loadModelDir } from './weights/load-node.js';
import { MAX_CONFIG_BYTES, parseManifest } from './weights/load.js';
import { findModel } from './weights/manifest.js';
import { checkEngineOptionTypes } from './options.js';

export * from './index.js';
export { loadModelDir } from './weights/load-node.js';
export { loadModelPath, loadCheckpoint } from './convert/read-node.js';

const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** No GPU device node (DRM render node or NVIDIA): Mesa's ICDs may be installed but have nothing to drive. */
function noGpuDevice(): boolean {
  const dri = existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
  return !dri && !existsSync('/dev/nvidia0');
}

/** PGM_WEBGPU_ADAPTER's values, each with the name Dawn's `adapter=` option matches (part of the Vulkan device's name, case-sensitive). */
const CPU_ADAPTERS = { llvmpipe: 'llvmpipe', swiftshader: 'SwiftShader' } as const;
type CpuAdapter = keyof typeof CPU_ADAPTERS;

/** The CPU adapters installed here and their Vulkan ICD files, lavapipe first (.lavapipe/ beside the package, or in the working directory). */
function cpuIcds(): Partial<Record<CpuAdapter, string>> {
  const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
  const lavapipe = [packageRoot, process.cwd()]
    .map((dir) => join(dir, '.lavapipe', 'lvp_icd.json'))
    .find((f) => existsSync(f));
  return {
    ...(lavapipe && { llvmpipe: lavapipe }),
    ...(existsSync(SWIFTSHADER_ICD) && { swiftshader: SWIFTSHADER_ICD }),
  };
}

/**
 * Dawn's options for the adapter: PGM_WEBGPU_ADAPTER (llvmpipe or swiftshader) names a CPU
 * adapter; without it, a machine with no GPU device gets lavapipe when it is installed, else
 * SwiftShader, and a machine with one its GPU. VK_ICD_FILENAMES lists only the chosen driver
 * (Dawn writes two warnings to stderr in every process that sees lavapipe); one set by the
 * caller is kept.
 */
function adapterOptions(): string[] {
  const wanted = process.env.PGM_WEBGPU_ADAPTER || undefined;
  if (wanted !== undefined && !Object.hasOwn(CPU_ADAPTERS, wanted)) {
    fail(
      'webgpu',
      `PGM_WEBGPU_ADAPTER=${wanted} names no adapter: use llvmpipe (lavapipe) or swiftshader, or unset it`,
    );
  }
  const named = wanted as CpuAdapter | undefined;
  if (process.env.VK_ICD_FILENAMES) return named ? [`adapter=${CPU_ADAPTERS[named]}`] : [];
  if (!named && !noGpuDevice()) return [];
  const icds = cpuIcds();
  const pick = named ?? (Object.keys(icds)[0] as CpuAdapter | undefined);
  if (!pick) return []; // no driver at all: requestGpu says there is no adapter
  const icd = icds[pick];
  if (!icd) {
    const missing =
      pick === 'llvmpipe'
        ? 'lavapipe is not installed (bash scripts/setup.sh unpacks it into .lavapipe/)'
        : `SwiftShader is not installed (${SWIFTSHADER_ICD}, from Debian's chromium package)`;
    fail('webgpu', `PGM_WEBGPU_ADAPTER=${pick}, but ${missing}; available: ${Object.keys(icds).join(', ') || 'none'}`);
  }
  process.env.VK_ICD_FILENAMES = icd;
  return [`adapter=${CPU_ADAPTERS[pick]}`];
}

/** A plan file larger than this is none of ours (a plan is a few KB per adapter and model): read as empty, then rewritten. */
const MAX_PLAN_FILE_BYTES = 2 ** 20;

/**
 * Kernel plans in Node outlive the process (each `pgm` command would measure again otherwise):
 * `$PGM_WEBGPU_CACHE/kernel-plans.json`, by default under `$XDG_CACHE_HOME` or `~/.cache`
 * (`pgm-webgpu/`). PGM_WEBGPU_CACHE set empty keeps them in the process only. Written whole
 * to a temporary file created exclusively under a fresh name (a link planted in a shared cache
 * directory is never followed) and renamed, so a reader never sees half a file.
 */
function nodePlanFile(): PlanFile | undefined {
  let dir = process.env.PGM_WEBGPU_CACHE;
  try {
    dir ??= join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'pgm-webgpu');
  } catch {
    return undefined; // no home directory (a user without one): plans stay in the process
  }
  if (!dir) return undefined;
  const file = join(dir, 'kernel-plans.json');
  return {
    read: async () => {
      let plans: unknown;
      try {
        if ((await stat(file)).size > MAX_PLAN_FILE_BYTES) return {};
        plans = JSON.parse(await readFile(file, 'utf8'));
      } catch {
        return {}; // none yet, or unreadable: written afresh
      }
      return typeof plans === 'object' && plans !== null && !Array.isArray(plans)
        ? (plans as Record<string, unknown>)
        : {};
    },
    write: async (plans) => {
      await mkdir(dir, { recursive: true });
      await replaceFile(file, JSON.stringify(plans));
    },
  };
}

let nodeGpu: GPU | undefined;

/** The `webgpu` package's GPU object, created once per process and kept alive. */
export async function getNodeGpu(): Promise<GPU> {
  if (nodeGpu) return nodeGpu;
  const options = adapterOptions();
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  let mod: typeof import('webgpu');
  try {
    mod = await import('webgpu');
  } catch (e) {
    // An optional peer dependency: browsers never need it, so it is not installed with us.
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND')
      fail('webgpu', 'WebGPU in Node needs the "webgpu" package, which is not installed: npm install webgpu');
    fail(
      'webgpu',
      `the "webgpu" package could not be loaded (${(e as Error).message}); reinstall it with npm install webgpu`,
    );
  }
  Object.assign(globalThis, mod.globals);
  nodeGpu = mod.create(options);
  usePlanFile(nodePlanFile());
  return nodeGpu;
}

/** A device on this machine's GPU, or on the CPU adapter adapterOptions picks (`options`: see requestGpu). */
export async function requestNodeGpu(options: Omit<GpuRequest, 'gpu'> = {}): Promise<GpuContext> {
  const gpu = await getNodeGpu();
  try {
    return await requestGpu({ ...options, gpu });
  } catch (e) {
    if (e instanceof PgmError) throw e;
    // Dawn's answer to an `adapter=` it cannot find: "no suitable backends found", then the adapters it has.
    const [first, ...adapters] = String((e as Error).message)
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean);
    throw new PgmError(
      'webgpu',
      `no WebGPU adapter for PGM_WEBGPU_ADAPTER=${process.env.PGM_WEBGPU_ADAPTER ?? ''} (VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? ''}): ${[first, adapters.join(' ')].filter(Boolean).join('; ')}`,
      { cause: e },
    );
  }
}

const PACKAGE_MANIFEST = fileURLToPath(new URL('../weights-manifest.json', import.meta.url));

/** `manifestUrl` as a path on disk, or undefined for an http(s) URL (fetched). */
function manifestPath(manifestUrl: EngineOptions['manifestUrl']): string | undefined {
  if (manifestUrl === undefined) return PACKAGE_MANIFEST;
  if (typeof manifestUrl !== 'string' && !(manifestUrl instanceof URL))
    fail('option', `manifestUrl must be a path or a URL, got ${brief(manifestUrl)}`);
  const text = String(manifestUrl);
  if (/^https?:/i.test(text)) return undefined;
  if (/^file:/i.test(text)) return fileURLToPath(text);
  if (/^[a-z][\w+.-]+:/i.test(text))
    fail('option', `manifestUrl ${text}: Node reads a manifest from a path, a file: URL or an http(s) URL`);
  return text;
}

/**
 * Node: load a model — a weights-manifest.json id (default: the manifest's default; the
 * manifest is the package's own unless `manifestUrl` names another, on disk or over http),
 * a model directory, a Lightning `.ckpt` (converted in memory, EMA weights), a URL, or what a
 * browser takes too (a .ckpt Blob, a folder's Files, a `local:` id of the `cache` store) — and
 * put it on this machine's GPU (or SwiftShader).
 */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  checkEngineOptionTypes(options);
  const { model } = options;
  const path = manifestPath(options.manifestUrl);
  let loaded;
  if ((typeof model === 'string' && /^https?:/i.test(model)) || isLocalModel(model))
    loaded = await loadWeights(options);
  else if (typeof model === 'string' && (existsSync(model) || model.includes('/') || model.endsWith('.ckpt')))
    loaded = await loadModelPath(model, loadOptions(options));
  else if (path === undefined || (model !== undefined && typeof model !== 'string'))
    loaded = await loadWeights(options);
  else {
    const manifest = parseManifest(
      await diskFiles(dirname(path)).read(basename(path), { maxBytes: MAX_CONFIG_BYTES }),
      path,
    );
    const entry = findModel(manifest, model);
    loaded = await loadModelDir(resolve(dirname(path), entry.path), { ...loadOptions(options), manifestEntry: entry });
  }
  return engineOn(options, loaded, requestNodeGpu);
}
