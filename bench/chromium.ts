/**
 * `npm run bench [-- --quick | --owt]`: runs the suite on the bench page in Chromium
 * (bench/browser.ts) and writes the results. PGM_WEBGPU_ADAPTER (default swiftshader) picks the
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
import { existsSync } from 'node:fs';
import { openBenchPage, ROOT } from './browser.js';
import { peerDirName, peerShape, type BenchMode, type BenchResult } from './suite.js';
import { finish, finishKv, parseKv, parseMode } from './write.js';

// `--forward L1,L2`: only the forward-pass latency at the OWT shapes (bench/forward.ts).
const forwardArg = process.argv.indexOf('--forward');
const forwardLengths = forwardArg >= 0 ? process.argv[forwardArg + 1].split(',').map(Number) : undefined;
// `--peer`: only the peer comparison of the mode's shape, printed as JSON.
const peerOnly = process.argv.includes('--peer');
const kvSamples = parseKv(process.argv.slice(2));
const mode = parseMode(forwardLengths || kvSamples ? [] : process.argv.slice(2).filter((a) => a !== '--peer'));

/**
 * The peer's export folder as a URL path, exporting it first if needed (Debian's python3-torch,
 * a few seconds at the quick shape); undefined, with the reason on stderr, when that fails.
 */
function peerExport(m: BenchMode): string | undefined {
  const p = peerShape(m);
  const dir = `bench/peer/out/${peerDirName(p)}/`;
  // meta.json is written last: its presence means a complete export.
  if (existsSync(`${ROOT}${dir}meta.json`)) return `/${dir}`;
  const s = p.shape;
  const args = [
    'training/export_onnx.py',
    '--out',
    dir,
    '--hidden-size',
    `${s.D}`,
    '--n-heads',
    `${s.H}`,
    '--blocks',
    `${s.halfBlocks}`,
    '--vocab-size',
    `${s.V}`,
    '--length',
    `${s.L}`,
    '--clean',
    `${p.clean}`,
    '--queries',
    `${p.queries}`,
  ];
  console.error(`bench: exporting the peer's model: /usr/bin/python3 ${args.join(' ')}`);
  const run = spawnSync('/usr/bin/python3', args, { cwd: ROOT, stdio: ['ignore', 2, 2] });
  if (run.status === 0) return `/${dir}`;
  console.error(
    `bench: no peer this run: the export failed (${run.error?.message ?? `exit ${run.status}`}); it needs Debian's python3-torch and python3-omegaconf; run the command above to see why`,
  );
  return undefined;
}
const { page, close } = await openBenchPage();
try {
  if (!(await page.evaluate(() => crossOriginIsolated)))
    console.error("bench: the page is not cross-origin isolated: ORT's wasm EP runs on 1 thread");
  if (forwardLengths) {
    console.log(JSON.stringify(await page.evaluate((l) => window.pgmForward(l), forwardLengths)));
  } else if (kvSamples) {
    finishKv(
      await page.evaluate((n) => window.pgmKvSpeed(n, 64), kvSamples),
      'chromium',
      `npm run bench -- --kv ${kvSamples}`,
    );
  } else if (peerOnly) {
    const dir = peerExport(mode);
    if (!dir) process.exitCode = 1;
    else console.log(JSON.stringify(await page.evaluate((d) => window.pgmPeer(d), dir), null, 2));
  } else {
    const result: BenchResult = await page.evaluate(([m, d]) => window.pgmBench(m, d), [
      mode,
      peerExport(mode),
    ] as const);
    finish(result);
  }
} finally {
  await close();
}
