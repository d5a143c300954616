/**
 * `npm run bench [-- --quick | --owt]`: serves bench/index.html with Vite, opens it in
 * Debian's Chromium (CHROMIUM_PATH, default /usr/bin/chromium) with WebGPU enabled, runs the
 * suite there and writes the results. PGM_WEBGPU_ADAPTER (default swiftshader) picks the
 * adapter; set it to '' on a machine with a GPU to benchmark the GPU.
 *
 * The suite ends with the onnxruntime-web peer (bench/peer.ts) on the ONNX export of
 * training/export_onnx.py, which runs here first when bench/peer/out/ lacks that shape.
 *
 * `--kv N`: instead, the speed of bench/kv-settings.ts's encoder settings on the shipped
 * pgm-small (L256, 64 steps, N seeds each, settings in turns), the Chromium side of
 * `npm run bench:quality`; writes bench/results/kv-speed-chromium.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';
import { createServer } from 'vite';
import { kvSpeedTable } from './kv-settings.js';
import { peerDirName, peerShape, type BenchMode, type BenchResult } from './suite.js';
import { finish, parseMode } from './write.js';

// `--forward L1,L2`: only the forward-pass latency at the OWT shapes (bench/forward.ts).
const forwardArg = process.argv.indexOf('--forward');
const forwardLengths = forwardArg >= 0 ? process.argv[forwardArg + 1].split(',').map(Number) : undefined;
// `--peer`: only the peer comparison of the mode's shape, printed as JSON.
const peerOnly = process.argv.includes('--peer');
const kvArg = process.argv.indexOf('--kv');
const kvSamples = kvArg >= 0 ? Number(process.argv[kvArg + 1]) : undefined;
if (kvSamples !== undefined && !(Number.isInteger(kvSamples) && kvSamples >= 1)) {
  console.error(`bench: --kv needs a number of seeds >= 1, got ${process.argv[kvArg + 1]}`);
  process.exit(2);
}
const mode = parseMode(forwardLengths || kvSamples ? [] : process.argv.slice(2).filter((a) => a !== '--peer'));
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

/**
 * The peer's export folder as a URL path, exporting it first if needed (Debian's python3-torch,
 * a few seconds at the quick shape); undefined, with the reason on stderr, when that fails.
 */
function peerExport(m: BenchMode): string | undefined {
  const p = peerShape(m);
  const dir = `bench/peer/out/${peerDirName(p)}/`;
  // meta.json is written last: its presence means a complete export.
  if (existsSync(`${root}${dir}meta.json`)) return `/${dir}`;
  const s = p.shape;
  const args = [
    'training/export_onnx.py', '--out', dir, '--hidden-size', `${s.D}`, '--n-heads', `${s.H}`, '--blocks', `${s.halfBlocks}`,
    '--vocab-size', `${s.V}`, '--length', `${s.L}`, '--clean', `${p.clean}`, '--queries', `${p.queries}`,
  ];
  console.error(`bench: exporting the peer's model: /usr/bin/python3 ${args.join(' ')}`);
  const run = spawnSync('/usr/bin/python3', args, { cwd: root, stdio: ['ignore', 2, 2] });
  if (run.status === 0) return `/${dir}`;
  console.error(`bench: no peer this run: the export failed (${run.error?.message ?? `exit ${run.status}`}); it needs Debian's python3-torch and python3-omegaconf; run the command above to see why`);
  return undefined;
}
// No HMR, no file watching, no dependency discovery: any of them can reload the page mid-run.
const server = await createServer({
  root,
  configFile: false,
  publicDir: false,
  logLevel: 'warn',
  optimizeDeps: { noDiscovery: true, include: [] },
  // Cross-origin isolation, which onnxruntime-web's wasm threads (SharedArrayBuffer) need.
  server: {
    host: '127.0.0.1', port: 0, open: false, hmr: false, watch: null,
    headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
  },
});
await server.listen();
const address = server.httpServer?.address();
if (!address || typeof address === 'string') throw new Error('bench: the Vite server has no port');
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args });
try {
  const page = await browser.newPage();
  page.on('console', (msg) => console.error(msg.text()));
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  // Generous: Vite transforms the page's modules on first request, on a machine that may be busy.
  await page.goto(`http://127.0.0.1:${address.port}/bench/index.html`, { timeout: 120_000 });
  await page.waitForFunction(() => typeof window.pgmBench === 'function', undefined, { timeout: 120_000 });
  if (!(await page.evaluate(() => crossOriginIsolated))) console.error('bench: the page is not cross-origin isolated: ORT\'s wasm EP runs on 1 thread');
  if (forwardLengths) {
    console.log(JSON.stringify(await page.evaluate((l) => window.pgmForward(l), forwardLengths)));
  } else if (kvSamples) {
    const speed = await page.evaluate((n) => window.pgmKvSpeed(n, 64), kvSamples);
    const dir = `${root}bench/results/`;
    mkdirSync(dir, { recursive: true });
    writeFileSync(`${dir}kv-speed-chromium.json`, `${JSON.stringify({ date: new Date().toISOString(), command: `npm run bench -- --kv ${kvSamples}`, ...speed }, null, 2)}\n`);
    console.log(`\n${speed.adapter}, L${speed.length}, ${speed.steps} steps, ${speed.samples} seeds per setting:\n\n${kvSpeedTable(speed)}\n`);
    console.error('bench: wrote bench/results/kv-speed-chromium.json');
  } else if (peerOnly) {
    const dir = peerExport(mode);
    if (!dir) process.exitCode = 1;
    else console.log(JSON.stringify(await page.evaluate((d) => window.pgmPeer(d), dir), null, 2));
  } else {
    const result: BenchResult = await page.evaluate(([m, d]) => window.pgmBench(m, d), [mode, peerExport(mode)] as const);
    finish(result);
  }
} finally {
  await browser.close();
  await server.close();
}
