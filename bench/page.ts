/** The bench page (bench/index.html): exposes the suite to bench/chromium.ts, logs to the console and the page. */
import { requestGpu } from '../src/gpu/context.js';
import { forwardTimings, type ForwardTiming } from './forward.js';
import { runSuite, type BenchMode, type BenchResult } from './suite.js';

declare global {
  interface Window {
    pgmBench: (mode: BenchMode) => Promise<BenchResult>;
    pgmForward: (lengths: number[]) => Promise<ForwardTiming[]>;
  }
}

const logElement = document.getElementById('log')!;

window.pgmBench = async (mode) => {
  const ctx = await requestGpu();
  try {
    return await runSuite(ctx, {
      mode,
      runtime: 'chromium',
      log: (line) => {
        console.log(line);
        logElement.textContent += `${line}\n`;
      },
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
