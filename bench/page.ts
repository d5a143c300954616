/** The bench page (bench/index.html): exposes the suite to bench/chromium.ts, logs to the console and the page. */
import { requestGpu, type GpuContext } from '../src/gpu/context.js';
import { forwardTimings, type ForwardTiming } from './forward.js';
import { runPeer } from './peer.js';
import { runSuite, type BenchMode, type BenchResult, type PeerResult } from './suite.js';

declare global {
  interface Window {
    /** `peerDir`: URL of a training/export_onnx.py folder (ending in `/`); none: no peer. */
    pgmBench: (mode: BenchMode, peerDir?: string) => Promise<BenchResult>;
    pgmForward: (lengths: number[]) => Promise<ForwardTiming[]>;
    pgmPeer: (peerDir: string) => Promise<PeerResult>;
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
  withGpu((ctx) => runSuite(ctx, { mode, runtime: 'chromium', log, peer: peerDir ? (c, l) => runPeer(c, peerDir, l) : undefined }));

window.pgmForward = (lengths) => withGpu((ctx) => forwardTimings(ctx, lengths, (line) => console.log(line)));

window.pgmPeer = (peerDir) => withGpu((ctx) => runPeer(ctx, peerDir, (line) => console.log(line)));
