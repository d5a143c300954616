/**
 * The page's engines: each model loaded in a worker of its own (the library's worker engine,
 * demo/worker.ts), its load drawn on the progress bar and described when done.
 */
import { createWorkerEngine, localIdOf, type LoadPhase, type LoadProgress, type WorkerEngine } from '../src/index.js';
import { $ } from './dom.js';
import { refreshLocalModels } from './local-model.js';
import { localSource, manifest, sourceLabel, type ModelSource } from './picker.js';
import { mib, showProblem } from './status.js';

/**
 * Up to two models: `main` (the picked one) and `twin` (race mode), each an engine in a worker of
 * its own. A race's PGM lanes (exact, incremental and adaptive encoders) are runs of one engine.
 */
export type Slot = 'main' | 'twin';

export interface ModelInfo {
  /** The manifest id, the URL, or a local model's id in the cache (local:<name>). */
  label: string;
  arch: 'pgm' | 'mdlm';
  length: number;
  pNucleus: number;
  /** From the manifest where it says, or the cache's entry of a local model. */
  params?: number;
  bytes: number;
  /** Every shard came from the Cache API (no download). */
  fromCache: boolean;
  /** Milliseconds of each load phase (download and verify summed over the files; warm-up: an untimed run of each forward pass). */
  phases: Partial<Record<LoadPhase, number>>;
  /** What the load survived and the page should say (a cache write refused, a damaged cached copy). */
  warnings: string[];
}

export const models = new Map<Slot, { source: ModelSource; info: ModelInfo; engine: WorkerEngine; worker: Worker }>();

/** What the load is doing now, in words: the file arriving and its bytes, or the phase. */
function describeProgress(label: string, p: LoadProgress, local: boolean): string {
  const all = p.totalBytes
    ? ` (model ${mib(p.loadedBytes)} / ${mib(p.totalBytes)}, ${((100 * p.loadedBytes) / p.totalBytes).toFixed(0)}%)`
    : '';
  switch (p.phase) {
    case 'convert':
      return `Converting ${p.file} into this browser's model cache: ${mib(p.loadedBytes)} / ${mib(p.totalBytes)} written${p.totalBytes ? ` (${((100 * p.loadedBytes) / p.totalBytes).toFixed(0)}%)` : ''}`;
    case 'download':
      return `Loading ${label}: ${p.cached || local ? 'reading' : 'downloading'} ${p.file} ${mib(p.loaded)}${p.total ? ` / ${mib(p.total)}` : ''}${all}`;
    case 'verify':
      return `Loading ${label}: verified ${p.file}, uploading its weights to the GPU${all}`;
    case 'upload':
      // The shards are read as they are uploaded: their events come between upload's first and last.
      return `Loading ${label}: ${p.ms === undefined ? 'reading the weights into the GPU' : 'compiling the kernels'}`;
    case 'compile':
      return `Loading ${label}: compiled the kernels`;
    case 'warm-up':
      return `Loading ${label}: warming up`;
  }
}

const seconds = (ms: number | undefined): string => `${((ms ?? 0) / 1000).toFixed(2)} s`;

/** A loaded model in one line: what it is, its size, and where each phase of its load went. */
export function describeModel(info: ModelInfo): string {
  const t = info.phases;
  const local = info.label.startsWith('local:');
  const read = info.fromCache
    ? `read from this browser's cache in ${seconds(t.download)}`
    : local
      ? `read from the files in ${seconds(t.download)}`
      : `downloaded in ${seconds(t.download)}`;
  const where =
    t.convert === undefined ? read : `converted into this browser's cache in ${seconds(t.convert)}, ${read}`;
  const params = info.params === undefined ? '' : `${(info.params / 1e6).toFixed(2)}M parameters, `;
  return (
    `${info.label}: ${info.arch.toUpperCase()}, ${params}length ${info.length}, ` +
    `${mib(info.bytes)} ${where}; verified in ${seconds(t.verify)}, uploaded in ${seconds(t.upload)}, compiled in ${seconds(t.compile)}, warmed up in ${seconds(t['warm-up'])}`
  );
}

/** Dispose of the engine of `slot` and its worker. */
export function unload(slot: Slot): void {
  const loaded = models.get(slot);
  models.delete(slot);
  loaded?.engine.dispose();
  loaded?.worker.terminate();
}

/** Load `source` into `slot` (replacing what it held), the progress bar following the load. */
export async function loadModel(slot: Slot, source: ModelSource, signal: AbortSignal): Promise<ModelInfo> {
  unload(slot);
  const label = sourceLabel(source);
  $('loading').hidden = false;
  $<HTMLProgressElement>('load-bar').value = 0;
  $('load-text').textContent = `Loading ${label}…`;
  const info: ModelInfo = {
    label,
    arch: 'pgm',
    length: 0,
    pNucleus: 1,
    bytes: 0,
    fromCache: false,
    phases: {},
    warnings: [],
  };
  let files = 0;
  let cachedFiles = 0;
  const onProgress = (p: LoadProgress) => {
    if (p.ms !== undefined) info.phases[p.phase] = (info.phases[p.phase] ?? 0) + p.ms;
    if (p.phase === 'download' && p.ms !== undefined && p.file !== 'config.json') {
      files++;
      if (p.cached) cachedFiles++;
    }
    info.bytes = p.totalBytes;
    if (p.warning) {
      info.warnings.push(p.warning);
      return;
    }
    // Bytes fill the bar to 90% (the shards are uploaded as they arrive); the end of the upload, compile and warm-up a little more each.
    const later: Partial<Record<LoadPhase, number>> = { upload: 0.9, compile: 0.95, 'warm-up': 0.98 };
    const ended = p.phase !== 'upload' || p.ms !== undefined;
    $<HTMLProgressElement>('load-bar').value =
      (ended && later[p.phase]) || (p.totalBytes ? (0.9 * p.loadedBytes) / p.totalBytes : 0);
    $('load-text').textContent = describeProgress(label, p, source.kind === 'local');
  };
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  try {
    // A local model's files or directory handle cross to the worker as they are (structured clone).
    const model =
      source.kind === 'manifest'
        ? { model: source.id, manifestUrl: source.manifestUrl }
        : { model: source.kind === 'url' ? source.url : source.model };
    // warmUp: no timed run builds pipelines in its first step (a race compares steps).
    const engine = await createWorkerEngine(worker, { ...model, onProgress, signal, warmUp: true });
    const { arch, length, pNucleus } = engine.config;
    // A local model is in the cache now, under its id: from there it loads next (Reload engine, the picker on later visits).
    if (source.kind === 'local') info.label = localIdOf(source.model);
    const kept = source.kind === 'local' ? (await refreshLocalModels()).find((m) => m.id === info.label) : undefined;
    const params = source.kind === 'manifest' ? manifest.find((m) => m.id === source.id)?.params : kept?.params;
    Object.assign(info, { arch, length, pNucleus, params, fromCache: files > 0 && cachedFiles === files });
    models.set(slot, { source: source.kind === 'local' ? localSource(info.label) : source, info, engine, worker });
    void engine.lost.then((lost) => {
      if (models.get(slot)?.engine !== engine) return;
      unload(slot);
      showProblem(`${lost.message.replace(/^t/, 'T')}. The page is fine: "Reload engine" creates one.`, true);
    });
    return info;
  } catch (e) {
    worker.terminate();
    throw e;
  } finally {
    $('loading').hidden = true;
  }
}
