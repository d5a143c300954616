/**
 * `pgm-webgpu/worker`: the worker side of createWorkerEngine. A module worker that loads this
 * module serves engines to its page, with no code of its own:
 *   new Worker(new URL('pgm-webgpu/worker', import.meta.url), { type: 'module' })
 * or a worker file whose first line is `import 'pgm-webgpu/worker';`. It answers only the
 * messages of its channel (src/worker-engine.ts), so the worker may carry the app's too.
 */
import { createEngine, type Engine } from './engine.js';
import { PgmError } from './errors.js';
import type { LoadProgress } from './weights/load.js';
import type { BatchOptions, GenerateOptions } from './types.js';
import { CHANNEL, receiveError, sendError, type FromWorker, type Posted, type ToWorker } from './worker-engine.js';

interface WorkerScope {
  postMessage(message: unknown): void;
  addEventListener(type: 'message', listener: (event: MessageEvent) => void): void;
}

const Dedicated = (globalThis as { DedicatedWorkerGlobalScope?: abstract new () => unknown })
  .DedicatedWorkerGlobalScope;
if (!Dedicated || !(globalThis instanceof Dedicated)) {
  throw new PgmError(
    'worker',
    "pgm-webgpu/worker runs in a module worker: new Worker(new URL('pgm-webgpu/worker', import.meta.url), { type: 'module' }); on the page, import createWorkerEngine from 'pgm-webgpu'",
  );
}
const scope = globalThis as unknown as WorkerScope;

const engines = new Map<number, Engine>();
/** What aborts engine n's load (key `n`) and its generation r (key `n/r`). */
const controllers = new Map<string, AbortController>();

const post = (message: FromWorker): void =>
  scope.postMessage({ channel: CHANNEL, ...message } satisfies Posted<FromWorker>);

async function create({ engine: id, options, progress }: Extract<ToWorker, { type: 'create' }>): Promise<void> {
  post({ type: 'accepted', engine: id });
  const controller = new AbortController();
  controllers.set(`${id}`, controller);
  try {
    const onProgress = progress ? (p: LoadProgress) => post({ type: 'progress', engine: id, progress: p }) : undefined;
    const engine = await createEngine({ ...options, signal: controller.signal, onProgress });
    engines.set(id, engine);
    void engine.lost.then((error) => post({ type: 'lost', engine: id, error: sendError(error) }));
    post({ type: 'ready', engine: id, config: engine.config, adapter: engine.adapter });
  } catch (e) {
    post({ type: 'failed', engine: id, error: sendError(e) });
  } finally {
    controllers.delete(`${id}`);
  }
}

async function generate({
  engine: id,
  run,
  batch,
  options,
  aborted,
}: Extract<ToWorker, { type: 'generate' }>): Promise<void> {
  const key = `${id}/${run}`;
  const controller = new AbortController();
  if (aborted) controller.abort(aborted.reason && receiveError(aborted.reason));
  controllers.set(key, controller);
  try {
    const engine = engines.get(id);
    if (!engine) throw new PgmError('disposed', 'this engine was disposed; create a new one');
    const { signal } = controller;
    const generation = batch
      ? engine.generateBatch({ ...(options as BatchOptions), signal })
      : engine.generate({ ...(options as GenerateOptions), signal });
    for await (const event of generation) post({ type: 'step', engine: id, run, event });
    post({ type: 'done', engine: id, run, result: await generation });
  } catch (e) {
    post({ type: 'failed', engine: id, run, error: sendError(e) });
  } finally {
    controllers.delete(key);
  }
}

scope.addEventListener('message', (event) => {
  const m = event.data as Posted<ToWorker> | undefined;
  if (m?.channel !== CHANNEL) return;
  switch (m.type) {
    case 'create':
      return void create(m);
    case 'generate':
      return void generate(m);
    case 'abort':
      controllers
        .get(m.run === undefined ? `${m.engine}` : `${m.engine}/${m.run}`)
        ?.abort(m.reason && receiveError(m.reason));
      return;
    case 'dispose':
      engines.get(m.engine)?.dispose();
      engines.delete(m.engine);
      return;
  }
});
