/** Node side of both runners: command-line flags, result files, the Markdown on stdout. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { markdown, svg } from './report.js';
import type { BenchMode, BenchResult } from './suite.js';

export function parseMode(argv: readonly string[]): BenchMode {
  const known = new Set(['--quick', '--owt']);
  const unknown = argv.filter((a) => !known.has(a));
  if (unknown.length) {
    console.error(`bench: unknown argument(s) ${unknown.join(' ')}; use --quick (a subset) or --owt (the paper's OpenWebText shapes, for real GPUs)`);
    process.exit(2);
  }
  if (argv.includes('--quick') && argv.includes('--owt')) {
    console.error('bench: --quick and --owt exclude each other');
    process.exit(2);
  }
  return argv.includes('--owt') ? 'owt' : argv.includes('--quick') ? 'quick' : 'default';
}

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '') || 'unknown';

/** The adapter as PGM_WEBGPU_ADAPTER names it (llvmpipe, swiftshader), else <vendor>-<architecture>. */
function adapterName(a: BenchResult['adapter']): string {
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
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
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
