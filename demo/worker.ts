/**
 * The demo's generation worker: loads models (the library keeps them in the Cache API), owns
 * their engines and streams load progress and step events to the page, so the page never waits
 * on the GPU. One request runs at a time; `stop` aborts the running load or generation.
 */
import {
  cacheStore, clearModelCache, createEngine, loadLocalModel, loadModelFromManifest, loadModelFromUrl, loadPackagedModel, PgmError, requestGpu, Vocabulary,
  type Engine, type GpuContext, type LoadedModel, type LoadOptions, type LoadPhase, type LoadProgress,
} from '../src/index.js';
import type { FromWorker, GenerationSettings, ModelSource, ShownToken, Slot, ToWorker } from './protocol.js';

interface Loaded {
  engine: Engine;
  ctx: GpuContext;
  disposing: boolean;
}

const engines = new Map<Slot, Loaded>();
let running: AbortController | undefined;
let loading: AbortController | undefined;
// Step events carry GPT-2 ids whatever the model's vocabulary: decode pieces with GPT-2's.
let gpt2: Vocabulary | undefined;

const post = (message: FromWorker): void => self.postMessage(message);

function piece(token: number, position: number): string {
  if (position === 0) return 'BOS';
  gpt2 ??= Vocabulary.gpt2();
  return gpt2.decode([token]);
}

function dispose(slot: Slot): void {
  const old = engines.get(slot);
  if (!old) return;
  old.disposing = true;
  engines.delete(slot);
  old.engine.dispose();
  old.ctx.device.destroy(); // the engine was given this device, so it leaves it alone
}

async function load(slot: Slot, source: ModelSource): Promise<void> {
  dispose(slot);
  loading = new AbortController();
  const { signal } = loading;
  const phases: Partial<Record<LoadPhase, number>> = {};
  const warnings: string[] = [];
  let files = 0;
  let cachedFiles = 0;
  const onProgress = (p: LoadProgress) => {
    if (p.ms !== undefined) phases[p.phase] = (phases[p.phase] ?? 0) + p.ms;
    if (p.phase === 'download' && p.ms !== undefined && p.file !== 'config.json') {
      files++;
      if (p.cached) cachedFiles++;
    }
    if (p.warning) warnings.push(p.warning);
    post({ type: 'progress', slot, progress: p });
  };
  let ctx: GpuContext | undefined;
  try {
    const options: LoadOptions = { onProgress, signal, store: cacheStore() };
    const model: LoadedModel & { id?: string } = await (source.kind === 'local'
      ? loadLocalModel(source.model, options)
      : source.kind === 'url'
        ? loadModelFromUrl(source.url, options)
        : source.manifestUrl === undefined
          ? loadPackagedModel(source.id, options)
          : loadModelFromManifest(source.manifestUrl, source.id, options));
    ctx = await requestGpu();
    // warmUp: no timed run builds pipelines in its first step (a race compares steps).
    const engine = await createEngine({ model, gpu: ctx, onProgress, signal, warmUp: true });
    const loaded: Loaded = { engine, ctx, disposing: false };
    engines.set(slot, loaded);
    ctx.lost.then((info) => {
      if (loaded.disposing) return;
      engines.delete(slot);
      post({ type: 'device-lost', slot, message: `The GPU device was lost (${info.message || info.reason || 'unknown reason'}).` });
    });
    const c = model.config;
    post({
      type: 'loaded',
      slot,
      info: {
        label: source.kind === 'manifest' ? source.id : source.kind === 'url' ? source.url : model.id!,
        arch: c.arch,
        length: c.length,
        vocabSize: c.vocabSize,
        hiddenSize: c.hiddenSize,
        pNucleus: c.pNucleus,
        params: [...model.weights.values()].reduce((a, t) => a + t.data.length, 0),
        bytes: model.dirConfig.shards.reduce((a, s) => a + s.size, 0),
        fromCache: files > 0 && cachedFiles === files,
        phases,
        warnings,
      },
    });
  } catch (e) {
    if (!engines.has(slot)) ctx?.device.destroy(); // the engine leaves a device it was given alone
    throw e;
  } finally {
    loading = undefined;
  }
}

async function generate(slot: Slot, s: GenerationSettings): Promise<void> {
  const loaded = engines.get(slot);
  if (!loaded) throw new PgmError('option', 'no model is loaded; pick a model first');
  running = new AbortController();
  const run = loaded.engine.generate({
    ...(s.infill !== undefined ? { infill: s.infill } : { prompt: s.prompt || undefined }),
    length: s.length,
    steps: s.steps,
    order: s.order,
    temperature: s.temperature,
    topP: s.topP,
    seed: s.seed,
    encoder: s.encoder,
    refresh: s.refresh,
    signal: running.signal,
  });
  let first = true;
  try {
    for await (const e of run) {
      const revealedAt = new Set(e.revealed.map((r) => r.position));
      const given: ShownToken[] = [];
      if (first) e.tokens.forEach((token, position) => token >= 0 && !revealedAt.has(position) && given.push({ position, token, piece: piece(token, position) }));
      first = false;
      const revealed = e.revealed.map((r) => ({ ...r, piece: piece(r.token, r.position) }));
      post({ type: 'step', slot, step: e.step, steps: e.steps, given, revealed, text: e.text, ms: e.ms });
    }
    const { text, stats } = await run;
    const { steps, totalMs, tokensPerSecond, stepMs, encoderRows, decoderRows } = stats;
    post({ type: 'done', slot, text, steps, totalMs, tokensPerSecond, stepMs, encoderRows, decoderRows });
  } catch (e) {
    if (e instanceof PgmError && e.code === 'aborted') post({ type: 'stopped', slot });
    else throw e;
  } finally {
    running = undefined;
  }
}

async function handle(m: ToWorker): Promise<void> {
  switch (m.type) {
    case 'load':
      return load(m.slot, m.source);
    case 'generate':
      return generate(m.slot, m.settings);
    case 'stop':
      running?.abort();
      loading?.abort();
      return;
    case 'clear-cache':
      await clearModelCache();
      post({ type: 'cache-cleared' });
      return;
    case 'lose-device':
      engines.get(m.slot)?.ctx.device.destroy();
      return;
  }
}

self.onmessage = (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  handle(m).catch((e: unknown) => {
    const slot = 'slot' in m ? m.slot : undefined;
    if (e instanceof PgmError) post({ type: 'error', slot, code: e.code, message: e.message });
    else post({ type: 'error', slot, code: 'internal', message: `unexpected error: ${(e as Error)?.message ?? String(e)}` });
  });
};
