/** The bench page (bench/index.html): exposes the suite to bench/chromium.ts, logs to the console and the page. */
import { createEngine } from '../src/engine.js';
import { requestGpu, type GpuContext } from '../src/gpu/context.js';
import { forwardTimings, type ForwardTiming } from './forward.js';
import { measureModel, type ModelRun, type Workload } from './full-size-measure.js';
import { kvSpeed, type KvSpeed } from './kv-settings.js';
import { runPeer } from './peer.js';
import { runSuite, type BenchMode, type BenchResult, type PeerResult } from './suite.js';

declare global {
  interface Window {
    /** `peerDir`: URL of a training/export_onnx.py folder (ending in `/`); none: no peer. */
    pgmBench: (mode: BenchMode, peerDir?: string) => Promise<BenchResult>;
    pgmForward: (lengths: number[]) => Promise<ForwardTiming[]>;
    pgmPeer: (peerDir: string) => Promise<PeerResult>;
    pgmKvSpeed: (samples: number, steps: number) => Promise<KvSpeed>;
    /** bench/full-size.ts: load the model folder at `url` (own device) and measure its generations. */
    pgmFullSize: (url: string, workload: Workload) => Promise<ModelRun>;
  }
}

const logElement = document.getElementById('log')!;

/** Run `f` on a fresh device, destroyed afterwards. */
async function withGpu<T>(f: (ctx: GpuContext) => Promise<T>): Promise<T> {
  const ctx = await requestGpu();
  try {
    return await f(ctx);
  } finally {
    ctx.device.destroy();
  }
}

const log = (line: string): void => {
  console.log(line);
  logElement.textContent += `${line}\n`;
};

window.pgmBench = (mode, peerDir) =>
  withGpu((ctx) =>
    runSuite(ctx, { mode, runtime: 'chromium', log, peer: peerDir ? (c, l) => runPeer(c, peerDir, l) : undefined }),
  );

window.pgmForward = (lengths) => withGpu((ctx) => forwardTimings(ctx, lengths, (line) => console.log(line)));

window.pgmPeer = (peerDir) => withGpu((ctx) => runPeer(ctx, peerDir, (line) => console.log(line)));

window.pgmKvSpeed = (samples, steps) =>
  withGpu(async (gpu) => {
    const engine = await createEngine({ gpu, maxBatch: 1 });
    try {
      return await kvSpeed(engine, samples, steps, log);
    } finally {
      engine.dispose();
    }
  });

window.pgmFullSize = async (url, workload) => {
  const t0 = performance.now();
  const engine = await createEngine({ model: url, maxBatch: 1 });
  const loadMs = performance.now() - t0;
  log(
    `${engine.adapter.description}: loaded ${url} in ${(loadMs / 1000).toFixed(1)} s (${(engine.gpuBytes / 2 ** 20).toFixed(0)} MiB on the GPU)`,
  );
  try {
    return await measureModel(engine, workload, loadMs, log);
  } finally {
    engine.dispose();
  }
};
