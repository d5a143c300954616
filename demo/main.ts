/**
 * The demo page: checks WebGPU, lists the models of a weights manifest, drives the
 * generation worker and draws what it streams. Query parameters:
 *   ?manifest=<url>   the weights manifest to list (default: the package's own, whose models
 *                     the build emits with the page)
 *   ?model=<id|url>   the model to load first (default: the manifest's default)
 */
import { GENERATION_OPTIONS, PACKAGED_MANIFEST, PgmError, type EncoderMode, type Order } from '../src/index.js';
import { validateManifest } from '../src/model/manifest.js';
import type { FromWorker, GenerationSettings, ModelInfo, ModelSource, Slot, ToWorker } from './protocol.js';
import { RunView, type DoneMessage } from './view.js';

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

let manifest: ManifestEntry[] = [];
let worker: Worker | undefined;
const models = new Map<Slot, { source: ModelSource; info: ModelInfo }>();
let busy = false;
let stopRequested = false;
let replayController: AbortController | undefined;

// ---- talking to the worker: one request at a time ----

class DemoError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let pending: { resolve: (m: FromWorker) => void; reject: (e: DemoError) => void; onEvent?: (m: FromWorker) => void } | undefined;

function startWorker(): Worker {
  const w = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
  w.onmessage = (event: MessageEvent<FromWorker>) => {
    const m = event.data;
    if (m.type === 'device-lost') {
      models.delete(m.slot);
      showProblem(`${m.message} The page is fine; the engine needs a restart.`, true);
      pending?.reject(new DemoError('device-lost', m.message));
      pending = undefined;
      return;
    }
    if (m.type === 'progress' || m.type === 'step') {
      pending?.onEvent?.(m);
      return;
    }
    const p = pending;
    pending = undefined;
    if (m.type === 'error') p?.reject(new DemoError(m.code, m.message));
    else p?.resolve(m);
  };
  w.onerror = (event) => {
    event.preventDefault();
    pending?.reject(new DemoError('internal', `the generation worker failed: ${event.message || 'could not start it'}`));
    pending = undefined;
  };
  return w;
}

function call(message: ToWorker, onEvent?: (m: FromWorker) => void): Promise<FromWorker> {
  worker ??= startWorker();
  return new Promise((resolve, reject) => {
    pending = { resolve, reject, onEvent };
    worker!.postMessage(message);
  });
}

// ---- status panel ----

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function showProblem(message: string, offerReload = false): void {
  const box = $('problem');
  box.replaceChildren();
  const p = document.createElement('p');
  p.className = 'error';
  p.textContent = message;
  box.append(p);
  if (offerReload) {
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = 'Reload engine';
    button.onclick = () => void reloadEngine();
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
  if (manifestUrl === undefined) return PACKAGED_MANIFEST;
  const res = await fetch(manifestUrl).catch((e: Error) => {
    throw new DemoError('io', `${manifestUrl}: fetch failed (${e.message})`);
  });
  if (!res.ok) throw new DemoError('io', `${manifestUrl}: HTTP ${res.status} ${res.statusText}`);
  const json: unknown = await res.json().catch(() => null);
  if (typeof json !== 'object' || json === null || !Array.isArray((json as { models?: unknown }).models)) throw new DemoError('config', `${manifestUrl}: not a weights manifest (no "models" array)`);
  // The engine's own checks, so every entry listed here can be loaded (an entry without arch is named, not a crash).
  try {
    return validateManifest(json, manifestUrl);
  } catch (e) {
    if (e instanceof PgmError) throw new DemoError(e.code, e.message);
    throw e;
  }
}

function fillModelPicker(selected: string | undefined): void {
  const select = $<HTMLSelectElement>('model');
  select.replaceChildren();
  for (const m of manifest) {
    const params = m.params ? `, ${(m.params / 1e6).toFixed(1)}M params` : '';
    select.append(new Option(`${m.id} (${m.arch.toUpperCase()}${params})`, m.id));
  }
  select.append(new Option('Model directory by URL…', CUSTOM));
  select.value = selected && manifest.some((m) => m.id === selected) ? selected : CUSTOM;
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
  return source.kind === 'manifest' ? source.id : source.url;
}

async function loadModel(slot: Slot, source: ModelSource): Promise<ModelInfo> {
  models.delete(slot);
  const label = sourceLabel(source);
  $('loading').hidden = false;
  $<HTMLProgressElement>('load-bar').value = 0;
  $('load-text').textContent = `Loading ${label}…`;
  try {
    const m = await call({ type: 'load', slot, source }, (e) => {
      if (e.type !== 'progress') return;
      const fraction = e.totalBytes ? e.loadedBytes / e.totalBytes : 0;
      $<HTMLProgressElement>('load-bar').value = fraction;
      $('load-text').textContent = `Loading ${label}: ${mib(e.loadedBytes)}${e.totalBytes ? ` / ${mib(e.totalBytes)} (${(fraction * 100).toFixed(0)}%)` : ''}`;
    });
    if (m.type !== 'loaded') throw new DemoError('internal', `unexpected reply ${m.type} to load`);
    models.set(slot, { source, info: m.info });
    return m.info;
  } finally {
    $('loading').hidden = true;
  }
}

function describeModel(info: ModelInfo): string {
  const where = info.fromCache ? 'from this browser\'s cache' : 'downloaded';
  return (
    `${info.label}: ${info.arch.toUpperCase()}, ${(info.params / 1e6).toFixed(2)}M parameters, length ${info.length}, ` +
    `${mib(info.bytes)} ${where} in ${(info.readMs / 1000).toFixed(2)} s, on the GPU in ${(info.gpuMs / 1000).toFixed(2)} s`
  );
}

async function loadMain(source: ModelSource): Promise<void> {
  setBusy(true);
  clearProblem();
  $('model-info').textContent = '';
  models.delete('twin');
  try {
    const info = await loadModel('main', source);
    performance.mark('pgm-model-ready', { detail: info });
    $('model-info').textContent = describeModel(info);
    const length = input('length');
    length.max = String(info.length);
    if (!(Number(length.value) <= info.length)) length.value = String(Math.min(128, info.length));
    input('top-p').placeholder = String(info.pNucleus);
  } catch (e) {
    showProblem(messageOf(e), e instanceof DemoError && e.code === 'device-lost');
  } finally {
    setBusy(false);
  }
}

function messageOf(e: unknown): string {
  if (e instanceof DemoError) return e.code === 'internal' ? `Something went wrong: ${e.message}` : e.message;
  return `Something went wrong: ${(e as Error)?.message ?? String(e)}`;
}

async function reloadEngine(): Promise<void> {
  pending?.reject(new DemoError('device-lost', 'engine restarted'));
  pending = undefined;
  worker?.terminate();
  worker = undefined;
  const main = models.get('main')?.source ?? currentSource();
  models.clear();
  if (main) await loadMain(main);
}

function currentSource(): ModelSource | undefined {
  const id = $<HTMLSelectElement>('model').value;
  if (id !== CUSTOM) return { kind: 'manifest', manifestUrl, id };
  const url = input('model-url').value.trim();
  return url ? { kind: 'url', url: new URL(url, location.href).href } : undefined;
}

// ---- generating ----

function setBusy(value: boolean): void {
  busy = value;
  const ready = models.has('main');
  $<HTMLButtonElement>('generate').disabled = busy || !ready;
  $<HTMLButtonElement>('stop').disabled = !busy;
  for (const id of ['model', 'load-url', 'clear-cache']) $<HTMLButtonElement>(id).disabled = busy;
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

function readSettings(): GenerationSettings {
  const text = input('text').value;
  const infill = $<HTMLSelectElement>('mode').value === 'infill';
  const topP = input('top-p').value.trim();
  return {
    ...(infill ? { infill: text } : { prompt: text }),
    length: Number(input('length').value),
    steps: Number(input('steps').value),
    order: $<HTMLSelectElement>('order').value as Order,
    temperature: Number(input('temperature').value),
    topP: topP === '' ? undefined : Number(topP),
    seed: Number(input('seed').value),
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

async function runOne({ slot, settings }: Lane, view: RunView): Promise<DoneMessage | undefined> {
  let first = true;
  try {
    const m = await call({ type: 'generate', slot, settings }, (e) => {
      if (e.type !== 'step') return;
      if (first) performance.mark(`pgm-first-token-${slot}`);
      first = false;
      view.step(e);
    });
    if (m.type === 'stopped') {
      view.note('stopped');
      return undefined;
    }
    if (m.type !== 'done') throw new DemoError('internal', `unexpected reply ${m.type} to generate`);
    performance.mark(`pgm-done-${slot}`);
    view.done(m);
    return m;
  } catch (e) {
    view.note('failed');
    throw e;
  }
}

async function generate(race: boolean): Promise<void> {
  if (busy) return;
  const settings = readSettings();
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
      await loadModel('twin', { kind: 'manifest', manifestUrl, id: twin.id });
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
    const results: (DoneMessage | undefined)[] = [];
    for (const [i, lane] of lanes.entries()) {
      if (stopRequested) {
        for (const view of views.slice(i)) view.note('not started (stopped)');
        break;
      }
      results.push(await runOne(lane, views[i]));
    }
    if (race && results.length === lanes.length && results.every(Boolean)) showRace(lanes, results as DoneMessage[], views);
  } catch (e) {
    showProblem(messageOf(e), e instanceof DemoError && e.code === 'device-lost');
  } finally {
    setBusy(false);
  }
}

/** "2.41× faster" (or slower): how much less time `fast` took than `slow`. */
function speedup(fast: DoneMessage, slow: DoneMessage): string {
  const x = slow.totalMs / fast.totalMs;
  return `${x.toFixed(2)}× ${x >= 1 ? 'faster' : 'slower'}`;
}

function showRace(lanes: Lane[], results: DoneMessage[], views: RunView[]): void {
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
    p.append(headline, `. Same settings and seed, measured one after the other in one worker, each model on its own WebGPU device, so no run slowed another; the ${mode} lane ${once}, the adaptive one also those the GPU finds stale, the exact one every clean token at every step.`);
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
  worker?.postMessage({ type: 'stop' } satisfies ToWorker);
};
$('clear-cache').onclick = async () => {
  await call({ type: 'clear-cache' });
  $('model-info').textContent += ' · cache cleared';
};

/** For tests and the curious: destroy the device, as a GPU reset would. */
(window as unknown as { pgmDemo: object }).pgmDemo = {
  loseDevice: (slot: Slot = 'main') => worker?.postMessage({ type: 'lose-device', slot } satisfies ToWorker),
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
  if (listed && asked !== undefined && !/^(https?:|\/|\.)/.test(asked) && !manifest.some((m) => m.id === asked)) {
    const choices = manifest.map((m) => m.id).join(', ') || 'none';
    unknown = `?model=${asked}: ${manifestUrl ?? 'the packaged manifest'} has no such model (it has: ${choices}); give one of those ids or a model directory URL (https:, / or ./)`;
    wanted = fallback;
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
