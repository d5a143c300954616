/**
 * The demo's generation worker: loads models (through the Cache API), owns their engines
 * and streams step events to the page, so the page never waits on the GPU. One request
 * runs at a time; `stop` aborts the running generation within one step.
 */
import { createEngine, ENCODER_MODES, loadModelFromManifest, loadModelFromUrl, loadPackagedModel, PgmError, requestGpu, Vocabulary, type Engine, type GpuContext } from '../src/index.js';
import { CACHE_NAME, cachingFetch, loadEvictingOnFailure, openModelCache } from './model-cache.js';
import type { FromWorker, GenerationSettings, ModelSource, ShownToken, Slot, ToWorker } from './protocol.js';

interface Loaded {
  engine: Engine;
  ctx: GpuContext;
  disposing: boolean;
}

const engines = new Map<Slot, Loaded>();
let running: AbortController | undefined;
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
  const started = performance.now();
  const cache = await openModelCache();
  let totalBytes = 0;
  let verifiedBytes = 0;
  let pendingBytes = 0; // downloaded bytes of the shard being read, not yet verified
  const report = () => post({ type: 'progress', slot, loadedBytes: verifiedBytes + pendingBytes, totalBytes });
  const files = cachingFetch(cache, {
    onConfig: (bytes) => {
      totalBytes = bytes;
      report();
    },
    onChunk: (bytes) => {
      pendingBytes += bytes;
      report();
    },
  });
  const onProgress = (loaded: number, total: number) => {
    verifiedBytes = loaded;
    totalBytes = total;
    pendingBytes = 0;
    report();
  };
  const ctx = await requestGpu();
  // The shards are read, verified and uploaded as the engine is created: a failure there evicts them.
  const { engine, bytes } = await loadEvictingOnFailure(cache, files, async () => {
    verifiedBytes = pendingBytes = 0;
    const model =
      source.kind === 'url'
        ? await loadModelFromUrl(source.url, { onProgress }, files.fetch)
        : source.manifestUrl === undefined
          ? await loadPackagedModel(source.id, { onProgress }, files.fetch)
          : await loadModelFromManifest(source.manifestUrl, source.id, { onProgress }, files.fetch);
    return { engine: await createEngine({ model, gpu: ctx }), bytes: model.dirConfig.shards.reduce((a, s) => a + s.size, 0) };
  }).catch((e) => {
    ctx.device.destroy();
    throw e;
  });
  const read = performance.now();
  const loaded: Loaded = { engine, ctx, disposing: false };
  engines.set(slot, loaded);
  ctx.lost.then((info) => {
    if (loaded.disposing) return;
    engines.delete(slot);
    post({ type: 'device-lost', slot, message: `The GPU device was lost (${info.message || info.reason || 'unknown reason'}).` });
  });
  await warmUp(engine, engine.config.arch);
  const c = engine.config;
  post({
    type: 'loaded',
    slot,
    info: {
      label: source.kind === 'manifest' ? source.id : source.url,
      arch: c.arch,
      length: c.length,
      vocabSize: c.vocabSize,
      hiddenSize: c.hiddenSize,
      pNucleus: c.pNucleus,
      params: engine.gpuModel.parameters,
      bytes,
      fromCache: files.misses === 0 && files.hits > 0,
      readMs: read - started,
      gpuMs: performance.now() - read,
    },
  });
}

/**
 * One tiny untimed run per forward pass the model has, so that no timed run builds pipelines
 * in its first step (a PGM builds its incremental pass on first use): a race compares steps.
 */
async function warmUp(engine: Engine, arch: 'pgm' | 'mdlm'): Promise<void> {
  for (const encoder of arch === 'pgm' ? ENCODER_MODES : (['exact'] as const)) await engine.generate({ length: 2, steps: 1, encoder });
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
      return;
    case 'clear-cache':
      if (typeof caches !== 'undefined') await caches.delete(CACHE_NAME);
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
