/** The bench page (bench/index.html): exposes the suite to bench/chromium.ts, logs to the console and the page. */
import { requestGpu } from '../src/gpu/context.js';
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

window.pgmBench = async (mode, peerDir) => {
  const ctx = await requestGpu();
  try {
    return await runSuite(ctx, {
      mode,
      runtime: 'chromium',
      log: (line) => {
        console.log(line);
        logElement.textContent += `${line}\n`;
      },
      peer: peerDir ? (c, log) => runPeer(c, peerDir, log) : undefined,
    });
  } finally {
    ctx.device.destroy();
  }
};

window.pgmForward = async (lengths) => {
  const ctx = await requestGpu();
  try {
    return await forwardTimings(ctx, lengths, (line) => console.log(line));
  } finally {
    ctx.device.destroy();
  }
};

window.pgmPeer = async (peerDir) => {
  const ctx = await requestGpu();
  try {
    return await runPeer(ctx, peerDir, (line) => console.log(line));
  } finally {
    ctx.device.destroy();
  }
};
