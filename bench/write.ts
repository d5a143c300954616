/** Node side of both runners: command-line flags, result files, the Markdown on stdout. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { kvSpeedTable, type KvSpeed } from './kv-settings.js';
import { markdown, svg } from './report.js';
import type { AdapterSummary } from '../src/gpu/context.js';
import type { BenchMode, BenchResult } from './suite.js';

/** `--kv N` (N seeds per encoder setting, N >= 1): the KV-settings speed run instead of the suite; undefined without the flag. */
/** bench/results/, where every runner writes (ends in a separator). */
export const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));

export function parseKv(argv: readonly string[]): number | undefined {
  const i = argv.indexOf('--kv');
  if (i < 0) return undefined;
  const n = Number(argv[i + 1]);
  if (!(Number.isInteger(n) && n >= 1)) {
    console.error(`bench: --kv needs a number of seeds >= 1, got ${argv[i + 1]}`);
    process.exit(2);
  }
  return n;
}

/** Write a `--kv` run as bench/results/kv-speed-<runtime>.json and print its table. */
export function finishKv(speed: KvSpeed, runtime: string, command: string): void {
  const dir = RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const file = `kv-speed-${runtime}.json`;
  writeFileSync(`${dir}${file}`, `${JSON.stringify({ date: new Date().toISOString(), command, ...speed }, null, 2)}\n`);
  console.log(
    `\n${speed.adapter}, L${speed.length}, ${speed.steps} steps, ${speed.samples} seeds per setting:\n\n${kvSpeedTable(speed)}\n`,
  );
  console.error(`bench: wrote bench/results/${file}`);
}

export function parseMode(argv: readonly string[]): BenchMode {
  const known = new Set(['--quick', '--owt']);
  const unknown = argv.filter((a) => !known.has(a));
  if (unknown.length) {
    console.error(
      `bench: unknown argument(s) ${unknown.join(' ')}; use --quick (a subset) or --owt (the paper's OpenWebText shapes, for real GPUs)`,
    );
    process.exit(2);
  }
  if (argv.includes('--quick') && argv.includes('--owt')) {
    console.error('bench: --quick and --owt exclude each other');
    process.exit(2);
  }
  return argv.includes('--owt') ? 'owt' : argv.includes('--quick') ? 'quick' : 'default';
}

const slug = (s: string): string =>
  s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '') || 'unknown';

/** The adapter as PGM_WEBGPU_ADAPTER names it (llvmpipe, swiftshader), else <vendor>-<architecture>. */
export function adapterName(a: Pick<AdapterSummary, 'description' | 'architecture' | 'vendor'>): string {
  if (/^llvmpipe/i.test(a.description)) return 'llvmpipe';
  if (a.architecture === 'swiftshader') return 'swiftshader';
  return slug(`${a.vendor}-${a.architecture}`);
}

/**
 * bench/results/<runtime>-<vendor>-<architecture>-<mode>-<date>.json (+ .svg), and the
 * latest run of each runtime as latest.json/.svg (Chromium) or, in Node, of each adapter as
 * latest-node-<adapter>.json/.svg (latest-node-llvmpipe, latest-node-swiftshader).
 */
export function writeResults(result: BenchResult): string[] {
  const dir = RESULTS_DIR;
  mkdirSync(dir, { recursive: true });
  const a = result.adapter;
  const base = `${slug(a.runtime)}-${slug(`${a.vendor}-${a.architecture}`)}-${result.mode}-${result.date.slice(0, 10)}`;
  const latest = a.runtime === 'chromium' ? 'latest' : `latest-${slug(a.runtime)}-${adapterName(a)}`;
  const json = `${JSON.stringify(result, null, 2)}\n`;
  const chart = `${svg(result)}\n`;
  const files: string[] = [];
  for (const name of [base, latest]) {
    writeFileSync(`${dir}${name}.json`, json);
    writeFileSync(`${dir}${name}.svg`, chart);
    files.push(`bench/results/${name}.json`, `bench/results/${name}.svg`);
  }
  return files;
}

export function finish(result: BenchResult): void {
  const files = writeResults(result);
  console.log(`\n${markdown(result)}\n`);
  console.error(`bench: ${(result.totalMs / 1000).toFixed(0)} s; wrote ${files.join(', ')}`);
}
