/**
 * `npm run bench [-- --quick | --owt]`: serves bench/index.html with Vite, opens it in
 * Debian's Chromium (CHROMIUM_PATH, default /usr/bin/chromium) with WebGPU enabled, runs the
 * suite there and writes the results. PGM_WEBGPU_ADAPTER (default swiftshader) picks the
 * adapter; set it to '' on a machine with a GPU to benchmark the GPU.
 */
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';
import { createServer } from 'vite';
import type { BenchResult } from './suite.js';
import { finish, parseMode } from './write.js';

// `--forward L1,L2`: only the forward-pass latency at the OWT shapes (bench/forward.ts).
const forwardArg = process.argv.indexOf('--forward');
const forwardLengths = forwardArg >= 0 ? process.argv[forwardArg + 1].split(',').map(Number) : undefined;
const mode = parseMode(forwardLengths ? [] : process.argv.slice(2));
const adapter = process.env.PGM_WEBGPU_ADAPTER ?? 'swiftshader';
const args = [
  '--no-sandbox',
  '--headless',
  '--enable-unsafe-webgpu',
  // Unquantized timestamp queries (Chromium rounds them to 100 us otherwise).
  '--enable-webgpu-developer-features',
  ...(adapter ? [`--use-webgpu-adapter=${adapter}`] : []),
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

const root = fileURLToPath(new URL('..', import.meta.url));
// No HMR, no file watching, no dependency discovery: any of them can reload the page mid-run.
const server = await createServer({
  root,
  configFile: false,
  publicDir: false,
  logLevel: 'warn',
  optimizeDeps: { noDiscovery: true, include: [] },
  server: { host: '127.0.0.1', port: 0, open: false, hmr: false, watch: null },
});
await server.listen();
const address = server.httpServer?.address();
if (!address || typeof address === 'string') throw new Error('bench: the Vite server has no port');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args });
try {
  const page = await browser.newPage();
  page.on('console', (msg) => console.error(msg.text()));
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await page.goto(`http://127.0.0.1:${address.port}/bench/index.html`);
  await page.waitForFunction(() => typeof window.pgmBench === 'function', undefined, { timeout: 120_000 });
  if (forwardLengths) {
    console.log(JSON.stringify(await page.evaluate((l) => window.pgmForward(l), forwardLengths)));
  } else {
    const result: BenchResult = await page.evaluate((m) => window.pgmBench(m), mode);
    finish(result);
  }
} finally {
  await browser.close();
  await server.close();
}
