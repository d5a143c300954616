/**
 * The demo page: checks WebGPU, lists the models of a weights manifest, loads each in a worker
 * of its own (the library's worker engine) and draws what it streams. Query parameters:
 *   ?manifest=<url>   the weights manifest to list (default: the package's own, whose models
 *                     the build emits with the page)
 *   ?model=<id|url>   the model to load first (default: the manifest's default; local:<name>: one
 *                     kept in this browser, see demo/local-model.ts)
 */
import {
  clearModelCache, createWorkerEngine, fetchManifest, GENERATION_OPTIONS, localIdOf, PACKAGED_MANIFEST, PgmError,
  type EncoderMode, type GenerateOptions, type GenerationStats, type LoadPhase, type LoadProgress, type LocalId, type LocalModel, type Order, type WorkerEngine,
} from '../src/index.js';
import { appendLocalOptions, isLocalChoice, refreshLocalModels, setUpLocalModels } from './local-model.js';
import { RunView } from './view.js';

interface ManifestEntry {
  id: string;
  arch: 'pgm' | 'mdlm';
  description?: string;
  params?: number;
  twin?: string;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const input = (id: string) => $<HTMLInputElement>(id);
const CUSTOM = '__url__';
const params = new URLSearchParams(location.search);
/** undefined: the manifest and models packaged with the engine. */
const manifestUrl = params.has('manifest') ? new URL(params.get('manifest')!, location.href).href : undefined;

/**
 * Up to two models: `main` (the picked one) and `twin` (race mode), each an engine in a worker of
 * its own. A race's two PGM lanes (exact and incremental encoder) are two runs of one engine.
 */
type Slot = 'main' | 'twin';

/**
 * A manifest's model (manifestUrl undefined: the manifest packaged with the engine), a model
 * directory, or a local model (demo/local-model.ts: picked or dropped files, or local:<name>).
 */
type ModelSource = { kind: 'manifest'; manifestUrl: string | undefined; id: string } | { kind: 'url'; url: string } | { kind: 'local'; model: LocalModel; label: string };

/** A local model of the cache, by its id. */
const localSource = (id: string): ModelSource => ({ kind: 'local', model: id as LocalId, label: id });

interface ModelInfo {
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

let manifest: ManifestEntry[] = [];
const models = new Map<Slot, { source: ModelSource; info: ModelInfo; engine: WorkerEngine; worker: Worker }>();
let busy = false;
let stopRequested = false;
/** Aborted by Stop: the running load or generation. */
let stopping: AbortController | undefined;
let replayController: AbortController | undefined;

// ---- status panel ----

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** A problem in words, with a button for what fixes it: restarting the engine (device loss), or `action`. */
function showProblem(message: string, offerReload = false, action?: { label: string; run: () => void }): void {
  const box = $('problem');
  box.replaceChildren();
  const p = document.createElement('p');
  p.className = 'error';
  p.textContent = message;
  box.append(p);
  if (offerReload) action = { label: 'Reload engine', run: () => void reloadEngine() };
  if (action) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = action.label;
    button.onclick = action.run;
    box.append(button);
  }
  box.hidden = false;
}

function clearProblem(): void {
  $('problem').hidden = true;
  $('problem').replaceChildren();
}

/** What to tell a visitor whose browser cannot run the demo: plain words, no stack trace. */
function showNoWebGpu(reason: string): void {
  $('adapter').textContent = '';
  const box = $('problem');
  box.replaceChildren();
  box.classList.add('no-webgpu');
  const title = document.createElement('p');
  title.className = 'error';
  title.textContent = reason;
  const how = document.createElement('ul');
  for (const line of [
    'Chrome or Edge 113+ on Windows, macOS and ChromeOS have WebGPU on by default; on Linux and Android, open chrome://flags, enable "Unsafe WebGPU Support" (#enable-unsafe-webgpu) and restart.',
    'Safari 26+ (macOS, iOS) has WebGPU; on older versions turn on Develop → Feature Flags → WebGPU.',
    'Firefox 141+ on Windows has WebGPU; elsewhere set dom.webgpu.enabled to true in about:config (Nightly).',
    'The page must be served over https or from localhost, and your GPU must not be blocklisted (see chrome://gpu).',
  ]) {
    const li = document.createElement('li');
    li.textContent = line;
    how.append(li);
  }
  box.append(title, how);
  box.hidden = false;
  for (const e of $('controls').querySelectorAll<HTMLInputElement | HTMLButtonElement | HTMLSelectElement>('input, button, select')) e.disabled = true;
}

async function describeAdapter(): Promise<boolean> {
  if (!window.isSecureContext) {
    showNoWebGpu('WebGPU needs a secure page: this one is served over plain http from another machine. Open it over https or from localhost.');
    return false;
  }
  if (!('gpu' in navigator) || !navigator.gpu) {
    showNoWebGpu('This browser does not support WebGPU, or it is turned off, so the demo cannot run here.');
    return false;
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: 'high-performance' }).catch(() => null);
  if (!adapter) {
    showNoWebGpu('This browser has WebGPU, but it found no usable GPU adapter (the GPU or its driver may be blocklisted), so the demo cannot run here.');
    return false;
  }
  const info = adapter.info;
  const l = adapter.limits;
  const fallback = (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ? ' (software fallback)' : '';
  $('adapter').textContent =
    `GPU: ${info.vendor || 'unknown vendor'} ${info.architecture || ''}${info.description ? ` (${info.description})` : ''}${fallback} · ` +
    `shader-f16: ${adapter.features.has('shader-f16') ? 'yes' : 'no'} · subgroups: ${adapter.features.has('subgroups') ? 'yes' : 'no'} · ` +
    `max storage binding ${mib(l.maxStorageBufferBindingSize)} · max buffer ${mib(l.maxBufferSize)} · ` +
    `workgroup memory ${(l.maxComputeWorkgroupStorageSize / 1024).toFixed(0)} KiB · ${l.maxComputeInvocationsPerWorkgroup} invocations/workgroup`;
  return true;
}

// ---- models ----

async function readManifest(): Promise<{ models: ManifestEntry[]; default: string | null }> {
  // The engine's own bounded read and checks, so every entry listed here can be loaded.
  return manifestUrl === undefined ? PACKAGED_MANIFEST : fetchManifest(manifestUrl);
}

/** The picker lists at most this many models (a manifest of 200,000 would make the page crawl); ?model= reaches any. */
const MAX_LISTED = 500;

function fillModelPicker(selected: string | undefined): void {
  const select = $<HTMLSelectElement>('model');
  select.replaceChildren();
  const listed = manifest.slice(0, MAX_LISTED);
  const wanted = manifest.find((m) => m.id === selected);
  if (wanted && !listed.includes(wanted)) listed.push(wanted);
  for (const m of listed) {
    const params = m.params ? `, ${(m.params / 1e6).toFixed(1)}M params` : '';
    select.append(new Option(`${m.id} (${m.arch.toUpperCase()}${params})`, m.id));
  }
  if (manifest.length > listed.length) {
    const more = new Option(`… ${manifest.length - listed.length} more in the manifest: open the page with ?model=<id>`, '');
    more.disabled = true;
    select.append(more);
  }
  appendLocalOptions(select);
  select.append(new Option('Model directory by URL…', CUSTOM));
  select.value = selected && (manifest.some((m) => m.id === selected) || isLocalChoice(selected)) ? selected : CUSTOM;
  showUrlInput(select.value === CUSTOM);
}

function showUrlInput(show: boolean): void {
  $('model-url-label').hidden = !show;
  $('load-url').hidden = !show;
}

/** The model raced against `id`: its manifest `twin`, else the first model of the other architecture. */
function twinOf(id: string): ManifestEntry | undefined {
  const me = manifest.find((m) => m.id === id);
  if (!me) return undefined;
  return manifest.find((m) => m.id === me.twin) ?? manifest.find((m) => m.arch !== me.arch);
}

function sourceLabel(source: ModelSource): string {
  return source.kind === 'manifest' ? source.id : source.kind === 'url' ? source.url : source.label;
}

/** What the load is doing now, in words: the file arriving and its bytes, or the phase. */
function describeProgress(label: string, p: LoadProgress, local: boolean): string {
  const all = p.totalBytes ? ` (model ${mib(p.loadedBytes)} / ${mib(p.totalBytes)}, ${((100 * p.loadedBytes) / p.totalBytes).toFixed(0)}%)` : '';
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

/** Dispose of the engine of `slot` and its worker. */
function unload(slot: Slot): void {
  const loaded = models.get(slot);
  models.delete(slot);
  loaded?.engine.dispose();
  loaded?.worker.terminate();
}

async function loadModel(slot: Slot, source: ModelSource, signal: AbortSignal): Promise<ModelInfo> {
  unload(slot);
  const label = sourceLabel(source);
  $('loading').hidden = false;
  $<HTMLProgressElement>('load-bar').value = 0;
  $('load-text').textContent = `Loading ${label}…`;
  const info: ModelInfo = { label, arch: 'pgm', length: 0, pNucleus: 1, bytes: 0, fromCache: false, phases: {}, warnings: [] };
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
    $<HTMLProgressElement>('load-bar').value = (ended && later[p.phase]) || (p.totalBytes ? (0.9 * p.loadedBytes) / p.totalBytes : 0);
    $('load-text').textContent = describeProgress(label, p, source.kind === 'local');
  };
  const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  try {
    // A local model's files or directory handle cross to the worker as they are (structured clone).
    const model = source.kind === 'manifest' ? { model: source.id, manifestUrl: source.manifestUrl } : { model: source.kind === 'url' ? source.url : source.model };
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

const seconds = (ms: number | undefined): string => `${((ms ?? 0) / 1000).toFixed(2)} s`;

function describeModel(info: ModelInfo): string {
  const t = info.phases;
  const local = info.label.startsWith('local:');
  const read = info.fromCache ? `read from this browser's cache in ${seconds(t.download)}` : local ? `read from the files in ${seconds(t.download)}` : `downloaded in ${seconds(t.download)}`;
  const where = t.convert === undefined ? read : `converted into this browser's cache in ${seconds(t.convert)}, ${read}`;
  const params = info.params === undefined ? '' : `${(info.params / 1e6).toFixed(2)}M parameters, `;
  return (
    `${info.label}: ${info.arch.toUpperCase()}, ${params}length ${info.length}, ` +
    `${mib(info.bytes)} ${where}; verified in ${seconds(t.verify)}, uploaded in ${seconds(t.upload)}, compiled in ${seconds(t.compile)}, warmed up in ${seconds(t['warm-up'])}`
  );
}

async function loadMain(source: ModelSource): Promise<void> {
  setBusy(true);
  clearProblem();
  showWarnings([]);
  $('model-info').textContent = '';
  unload('twin');
  try {
    const info = await loadModel('main', source, stopping!.signal);
    if (source.kind === 'local') fillModelPicker(info.label);
    performance.mark('pgm-model-ready', { detail: info });
    $('model-info').textContent = describeModel(info);
    showWarnings(info.warnings);
    const length = input('length');
    length.max = String(info.length);
    if (!(Number(length.value) <= info.length)) length.value = String(Math.min(128, info.length));
    input('top-p').placeholder = String(info.pNucleus);
  } catch (e) {
    if (e instanceof PgmError && e.code === 'aborted') showProblem(`Loading ${sourceLabel(source)} stopped.`, false, { label: 'Load it again', run: () => void loadMain(source) });
    else showProblem(messageOf(e), e instanceof PgmError && e.code === 'device-lost');
  } finally {
    setBusy(false);
  }
}

/** What a load survived (a cache write refused, a damaged cached copy), one line each: never silent. */
function showWarnings(warnings: string[]): void {
  const box = $('load-warnings');
  box.replaceChildren(...warnings.map((w) => Object.assign(document.createElement('li'), { textContent: `Warning: ${w}` })));
  box.hidden = warnings.length === 0;
}

function messageOf(e: unknown): string {
  if (e instanceof PgmError) return e.message;
  return `Something went wrong: ${(e as Error)?.message ?? String(e)}`;
}

async function reloadEngine(): Promise<void> {
  const main = models.get('main')?.source ?? currentSource();
  unload('main');
  unload('twin');
  if (main) await loadMain(main);
}

function currentSource(): ModelSource | undefined {
  const id = $<HTMLSelectElement>('model').value;
  if (isLocalChoice(id)) return localSource(id);
  if (id !== CUSTOM) return { kind: 'manifest', manifestUrl, id };
  const url = input('model-url').value.trim();
  return url ? { kind: 'url', url: new URL(url, location.href).href } : undefined;
}

// ---- generating ----

function setBusy(value: boolean): void {
  busy = value;
  stopping = value ? new AbortController() : undefined;
  const ready = models.has('main');
  $<HTMLButtonElement>('generate').disabled = busy || !ready;
  $<HTMLButtonElement>('stop').disabled = !busy;
  for (const id of ['model', 'load-url', 'clear-cache', 'open-folder', 'open-files']) $<HTMLButtonElement>(id).disabled = busy;
  const main = models.get('main');
  const twin = main?.source.kind === 'manifest' ? twinOf(main.source.id) : undefined;
  $<HTMLButtonElement>('race').disabled = busy || !twin;
  $('twin-note').textContent = twin ? `twin: ${twin.id} (${twin.arch.toUpperCase()})` : main ? 'no twin of the other architecture in the manifest' : '';
  showEncoderControls();
}

/** The encoder is a PGM's choice: with an MDLM picked both controls are off, and say so. */
function showEncoderControls(): void {
  const arch = models.get('main')?.info.arch;
  const encoder = $<HTMLSelectElement>('encoder');
  encoder.disabled = arch !== 'pgm';
  input('refresh').disabled = arch !== 'pgm' || encoder.value === 'exact';
  $('encoder-note').textContent =
    arch === 'mdlm' ? 'not for an MDLM, which runs every position at every step: ignored (a race runs its PGM twin with both encoders)' : '';
}

/** The encoder the controls ask for; nothing where they are off (an MDLM, or refresh with the exact encoder). */
function encoderSettings(): { encoder?: EncoderMode; refresh?: number } {
  const encoder = $<HTMLSelectElement>('encoder');
  const refresh = input('refresh');
  if (encoder.disabled) return {};
  return { encoder: encoder.value as EncoderMode, refresh: refresh.disabled || refresh.value.trim() === '' ? undefined : Number(refresh.value) };
}

/** A number field that must hold a number: an empty one is said to be empty, not read as 0. */
function requiredNumber(id: string, label: string): number {
  const text = input(id).value.trim();
  if (text === '') throw new PgmError('option', `${label} is empty: give a number`);
  return Number(text);
}

/** The generation options of the controls. */
type GenerationSettings = GenerateOptions & { length: number };

function readSettings(): GenerationSettings {
  const text = input('text').value;
  const infill = $<HTMLSelectElement>('mode').value === 'infill';
  const topP = input('top-p').value.trim();
  return {
    ...(infill ? { infill: text } : { prompt: text || undefined }),
    length: requiredNumber('length', 'Length'),
    steps: requiredNumber('steps', 'Steps'),
    order: $<HTMLSelectElement>('order').value as Order,
    temperature: requiredNumber('temperature', 'Temperature'),
    topP: topP === '' ? undefined : Number(topP),
    seed: requiredNumber('seed', 'Seed'),
  };
}

/** One run on screen: a model's slot, what it is called there and its settings (the PGM's encoder among them). */
interface Lane {
  slot: Slot;
  name: string;
  settings: GenerationSettings;
}

/** "MDLM", "PGM exact", "PGM incremental (refresh every 4 steps)". */
function laneName(slot: Slot, { encoder, refresh }: GenerationSettings): string {
  const arch = models.get(slot)!.info.arch.toUpperCase();
  if (encoder === undefined || encoder === 'exact') return encoder === undefined ? arch : `${arch} ${encoder}`;
  return `${arch} ${encoder} (refresh ${refresh === undefined ? 'never' : `every ${refresh} steps`})`;
}

/**
 * The race: the MDLM, then the PGM with the exact encoder, then the PGM with the incremental
 * one (delayed when the controls pick it), then the PGM with the adaptive one, the KV-set lanes
 * with the refresh of the controls when they picked that encoder (a picked MDLM's controls are
 * off: its twin's lanes never refresh). The PGM lanes share its engine.
 */
function raceLanes(settings: GenerationSettings): Lane[] {
  const slots: Slot[] = ['main', 'twin'];
  const mdlm = slots.find((s) => models.get(s)!.info.arch === 'mdlm');
  const pgm = slots.find((s) => models.get(s)!.info.arch === 'pgm');
  if (mdlm === undefined || pgm === undefined) return slots.map((slot) => ({ slot, name: laneName(slot, settings), settings }));
  const { encoder, refresh } = encoderSettings();
  const runs: [Slot, GenerationSettings][] = [
    [mdlm, settings],
    [pgm, { ...settings, encoder: 'exact' }],
    [pgm, { ...settings, encoder: encoder === 'delayed' ? 'delayed' : 'incremental', refresh: encoder === 'adaptive' ? undefined : refresh }],
    [pgm, { ...settings, encoder: 'adaptive', refresh: encoder === 'adaptive' ? refresh : undefined }],
  ];
  return runs.map(([slot, s]) => ({ slot, name: laneName(slot, s), settings: s }));
}

async function runOne({ slot, settings }: Lane, view: RunView): Promise<GenerationStats | undefined> {
  const run = models.get(slot)!.engine.generate({ ...settings, signal: stopping!.signal });
  try {
    for await (const step of run) {
      if (view.events.length === 0) performance.mark(`pgm-first-token-${slot}`);
      view.step(step);
    }
    const result = await run;
    performance.mark(`pgm-done-${slot}`);
    view.done(result);
    return result.stats;
  } catch (e) {
    if (e instanceof PgmError && e.code === 'aborted') {
      view.note('stopped');
      return undefined;
    }
    view.note('failed');
    throw e;
  }
}

async function generate(race: boolean): Promise<void> {
  if (busy) return;
  let settings: GenerationSettings;
  try {
    settings = readSettings();
  } catch (e) {
    showProblem(messageOf(e));
    return;
  }
  performance.mark('pgm-generate');
  replayController?.abort();
  stopRequested = false;
  setBusy(true);
  clearProblem();
  $('race-summary').hidden = true;
  const runs = $('runs');
  runs.replaceChildren();
  runs.classList.toggle('race', race);
  try {
    const main = models.get('main')!;
    if (race && !models.has('twin')) {
      const twin = twinOf((main.source as { id: string }).id)!;
      await loadModel('twin', { kind: 'manifest', manifestUrl, id: twin.id }, stopping!.signal);
    }
    const single = { ...settings, ...encoderSettings() };
    const lanes: Lane[] = race ? raceLanes(settings) : [{ slot: 'main', name: laneName('main', single), settings: single }];
    runs.style.setProperty('--lanes', String(lanes.length));
    const views = lanes.map((lane, i) => {
      const view = new RunView(`${models.get(lane.slot)!.info.label} · ${lane.name}`, settings.length);
      if (i > 0) view.note(`waiting for ${lanes[i - 1].name} to finish`);
      runs.append(view.root);
      return view;
    });
    // One after the other: on one GPU, concurrent runs would slow each other down and the
    // measured speed-ups would mean little.
    const results: (GenerationStats | undefined)[] = [];
    for (const [i, lane] of lanes.entries()) {
      if (stopRequested) {
        for (const view of views.slice(i)) view.note('not started (stopped)');
        break;
      }
      results.push(await runOne(lane, views[i]));
    }
    if (race && results.length === lanes.length && results.every(Boolean)) showRace(lanes, results as GenerationStats[], views);
  } catch (e) {
    showProblem(messageOf(e), e instanceof PgmError && e.code === 'device-lost');
  } finally {
    setBusy(false);
  }
}

/** "2.41× faster" (or slower): how much less time `fast` took than `slow`. */
function speedup(fast: GenerationStats, slow: GenerationStats): string {
  const x = slow.totalMs / fast.totalMs;
  return `${x.toFixed(2)}× ${x >= 1 ? 'faster' : 'slower'}`;
}

function showRace(lanes: Lane[], results: GenerationStats[], views: RunView[]): void {
  const lane = (arch: string, encoder: (e?: EncoderMode) => boolean) => lanes.findIndex((l) => models.get(l.slot)!.info.arch === arch && encoder(l.settings.encoder));
  const mdlm = results[lane('mdlm', () => true)];
  const exact = results[lane('pgm', (e) => e === 'exact')];
  const kept = lane('pgm', (e) => e === 'incremental' || e === 'delayed');
  const incremental = results[kept];
  const adaptive = results[lane('pgm', (e) => e === 'adaptive')];
  const mode = lanes[kept]?.settings.encoder;
  const box = $('race-summary');
  box.replaceChildren();
  const p = document.createElement('p');
  p.dataset.testid = 'speedup';
  if (mdlm && exact && incremental && adaptive) {
    const headline = document.createElement('strong');
    headline.textContent = `PGM exact is ${speedup(exact, mdlm)} than MDLM; PGM ${mode} is ${speedup(incremental, mdlm)} than MDLM and ${speedup(incremental, exact)} than exact; PGM adaptive is ${speedup(adaptive, exact)} than exact`;
    const once = mode === 'delayed' ? 'encodes each token twice (when it joins and one step later)' : 'encodes each token once';
    p.append(headline, `. Same settings and seed, measured one after the other, each model in a worker of its own on its own WebGPU device, so no run slowed another; the ${mode} lane ${once}, the adaptive one also those the GPU finds stale, the exact one every clean token at every step.`);
  } else {
    p.textContent = 'Same settings and seed, measured one after the other.';
  }
  const list = document.createElement('ul');
  results.forEach((r, i) => {
    const li = document.createElement('li');
    li.dataset.testid = 'lane-speed';
    const rows = models.get(lanes[i].slot)!.info.arch === 'pgm' ? 'encoder rows' : 'network rows';
    li.textContent = `${lanes[i].name}: ${(r.totalMs / 1000).toFixed(2)} s, ${r.tokensPerSecond.toFixed(1)} tokens/s, ${(r.totalMs / r.steps).toFixed(1)} ms per step, ${r.encoderRows} ${rows}`;
    list.append(li);
  });
  const replay = document.createElement('button');
  replay.type = 'button';
  replay.textContent = 'Replay side by side at measured speed';
  replay.onclick = () => {
    replayController?.abort();
    replayController = new AbortController();
    for (const v of views) void v.replay(replayController.signal);
  };
  box.append(p, list, replay);
  box.hidden = false;
}

// ---- wiring ----

const examples = { prompt: 'It was a dark and stormy night', infill: 'The {{4}} sat on the mat.{{12}} Then{{16}}' };

$<HTMLSelectElement>('mode').onchange = (e) => {
  const mode = (e.target as HTMLSelectElement).value as keyof typeof examples;
  $('text-label').textContent = mode === 'infill' ? 'Template ({{n}} = n tokens to write)' : 'Prompt';
  input('text').value = examples[mode];
};
$<HTMLSelectElement>('model').onchange = () => {
  const custom = $<HTMLSelectElement>('model').value === CUSTOM;
  showUrlInput(custom);
  const source = currentSource();
  if (!custom && source) void loadMain(source);
};
$('load-url').onclick = () => {
  const source = currentSource();
  if (source) void loadMain(source);
};
$('controls').onsubmit = (e) => {
  e.preventDefault();
  void generate(false);
};
$('race').onclick = () => void generate(true);
$('encoder').onchange = showEncoderControls;
$('stop').onclick = () => {
  stopRequested = true;
  stopping?.abort();
};
$('clear-cache').onclick = async () => {
  await clearModelCache();
  $('model-info').textContent += ' · cache cleared';
  await refreshLocalModels();
  fillModelPicker($<HTMLSelectElement>('model').value);
};

/** For tests and the curious: destroy the device of a model's worker, as a GPU reset would (demo/worker.ts). */
(window as unknown as { pgmDemo: object }).pgmDemo = {
  loseDevice: (slot: Slot = 'main') => models.get(slot)?.worker.postMessage('lose-device'),
};

/** Each settings control explains itself with its option's entry of the API's table: what it does, takes and defaults to. */
function describeControls(): void {
  const controls: Record<string, string> = { text: 'prompt', length: 'length', steps: 'steps', order: 'order', temperature: 'temperature', 'top-p': 'topP', seed: 'seed', encoder: 'encoder', refresh: 'refresh' };
  for (const [id, name] of Object.entries(controls)) {
    const option = GENERATION_OPTIONS.find((o) => o.name === name);
    if (option) $(id).title = `${option.doc}; ${option.takes} (default: ${option.default})`;
  }
}

async function start(): Promise<void> {
  describeControls();
  if (!(await describeAdapter())) return;
  setUpLocalModels({ load: (model, label) => void loadMain({ kind: 'local', model, label }), busy: () => busy, problem: (message) => showProblem(message) });
  await refreshLocalModels();
  const asked = params.get('model') ?? undefined;
  let wanted = asked;
  let fallback: string | undefined;
  let listed = false;
  try {
    const m = await readManifest();
    listed = true;
    manifest = m.models;
    fallback = m.default ?? manifest[0]?.id;
    wanted ??= fallback;
  } catch (e) {
    showProblem(`${messageOf(e)}. You can still load a converted model directory by URL.`);
  }
  let unknown: string | undefined;
  if (listed && asked !== undefined && !/^(https?:|\/|\.)/.test(asked) && !manifest.some((m) => m.id === asked) && !isLocalChoice(asked)) {
    const choices = manifest.map((m) => m.id).join(', ') || 'none';
    unknown = `?model=${asked}: ${manifestUrl ?? 'the packaged manifest'} has no such model (it has: ${choices}); give one of those ids or a model directory URL (https:, / or ./)`;
    wanted = fallback;
  }
  if (wanted !== undefined && isLocalChoice(wanted)) {
    fillModelPicker(wanted);
    return loadMain(localSource(wanted));
  }
  const fromManifest = wanted !== undefined && manifest.some((m) => m.id === wanted);
  fillModelPicker(fromManifest ? wanted : undefined);
  if (fromManifest) {
    await loadMain({ kind: 'manifest', manifestUrl, id: wanted! });
    // After the load, which clears earlier problems: the page says why this is not the model asked for.
    if (unknown) showProblem(`${unknown}. Loaded ${wanted} instead.`);
    return;
  }
  if (unknown) showProblem(`${unknown}.`);
  if (wanted && /^(https?:|\/|\.)/.test(wanted)) {
    input('model-url').value = wanted;
    return loadMain({ kind: 'url', url: new URL(wanted, location.href).href });
  }
  $('model-info').textContent = manifest.length ? '' : `No models in ${manifestUrl ?? 'the packaged manifest'} yet: load a converted model directory by URL.`;
  setBusy(false);
}

start().catch((e: unknown) => showProblem(messageOf(e)));
