/**
 * `npm run bench:full` (bench/full-size.ts) in small: its command line, its Node child (load
 * and generations, peak RSS) and its measurements on the shipped models instead of the
 * full-size ones, and the Markdown it prints from them.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  CPU_ADAPTERS,
  FullSizeUsageError,
  fullSizeMarkdown,
  measureModel,
  parseFullSizeArgs,
  type FullSizeResult,
  type HostMemory,
  type ModelRun,
  type Workload,
} from '../../bench/full-size-measure.js';
import { createEngine } from '../../src/node.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('bench:full arguments', () => {
  it('defaults to the three CPU adapters, both models in f16, 64 tokens in 4 steps with the delayed KV set', () => {
    expect(parseFullSizeArgs([], '/cache')).toEqual({
      adapters: CPU_ADAPTERS,
      models: ['pgm', 'mdlm'],
      dtype: 'f16',
      cache: '/cache',
      reconvert: false,
      generate: 64,
      steps: 4,
      kv: 'delayed',
    });
    expect(CPU_ADAPTERS).toEqual(['node-llvmpipe', 'node-swiftshader', 'chromium-swiftshader']);
  });

  it('takes every option', () => {
    const args = parseFullSizeArgs(
      [
        '--adapters',
        'node-gpu,chromium-gpu',
        '--steps',
        '64',
        '--generate',
        '128',
        '--kv',
        'adaptive',
        '--models',
        'mdlm',
        '--dtype',
        'f32',
        '--cache',
        '/c',
        '--reconvert',
      ],
      '/cache',
    );
    expect(args).toEqual({
      adapters: ['node-gpu', 'chromium-gpu'],
      models: ['mdlm'],
      dtype: 'f32',
      cache: '/c',
      reconvert: true,
      generate: 128,
      steps: 64,
      kv: 'adaptive',
    });
  });

  it.each([
    [['--adapters', 'node-vulkan'], /--adapters: unknown node-vulkan; choose from node-llvmpipe, /],
    [['--adapters', ''], /--adapters: none given/],
    [['--steps', '0'], /--steps needs a whole number >= 1, got "0"/],
    [['--steps', '2.5'], /--steps needs a whole number >= 1/],
    [['--steps'], /--steps needs a value/],
    [['--steps', '--reconvert'], /--steps needs a value/],
    [['--steps', '65'], /--steps 65 is more than the 64 tokens generated/],
    [['--kv', 'exact'], /--kv: unknown exact; choose one of incremental, delayed, adaptive/],
    [['--kv', 'delayed,adaptive'], /--kv: unknown delayed,adaptive/],
    [['--dtype', 'bf16'], /--dtype: unknown bf16/],
    [['--fast'], /unknown argument --fast/],
  ])('refuses %j', (argv, message) => {
    expect(() => parseFullSizeArgs(argv, '/cache')).toThrow(FullSizeUsageError);
    expect(() => parseFullSizeArgs(argv, '/cache')).toThrow(message);
  });
});

const workload: Workload = { generate: 16, steps: 4, kv: 'delayed' };

/** The timings of a run are what they claim: positive, p50 <= p95, the first token within the generation. */
function expectTimes(run: ModelRun): void {
  for (const s of run.runs) {
    expect(s.firstTokenMs).toBeGreaterThan(0);
    expect(s.firstTokenMs).toBeLessThanOrEqual(s.totalMs);
    expect(s.coldFirstTokenMs).toBeGreaterThan(0);
    expect(s.msPerStepP50).toBeGreaterThan(0);
    expect(s.msPerStepP95).toBeGreaterThanOrEqual(s.msPerStepP50);
    expect(s.tokensPerS).toBeCloseTo(workload.generate / (s.totalMs / 1000), 6);
    expect(s.dispatchesPerStep).toBeGreaterThan(5);
    expect(s.forwards).toBeGreaterThanOrEqual(workload.steps - 1);
  }
}

describe('bench:full on the shipped models', () => {
  it('measures the PGM in a Node child (exact and the KV set) and the MDLM in this process, and writes the table', async () => {
    // The child as bench/full-size.ts starts it, on the shipped pgm-small (L256) instead of the full-size model.
    const { stdout } = await promisify(execFile)(
      process.execPath,
      [
        '--import',
        'tsx',
        'bench/full-size.ts',
        '--child',
        'node',
        JSON.stringify({ dir: 'models/pgm-small', workload }),
      ],
      { cwd: ROOT },
    );
    const line = stdout.split('\n').find((l) => l.startsWith('FULL-SIZE-RESULT '));
    const pgm = JSON.parse(line!.slice('FULL-SIZE-RESULT '.length)) as ModelRun & {
      host: { process: number; before: number };
    };
    expect(pgm.model).toBe('PGM');
    expect(pgm.runs.map((r) => r.setting)).toEqual(['PGM exact', 'PGM KV set (delayed)']);
    expect(pgm.loadMs).toBeGreaterThan(0);
    expect(pgm.gpuBytes).toBeGreaterThan(6_000_000); // the f16 weights alone are 6.4 MB
    expect(pgm.host.before).toBeGreaterThan(0);
    expect(pgm.host.process).toBeGreaterThan(pgm.host.before);
    expectTimes(pgm);
    // The KV set encodes fewer rows, so the exact pass reads at least as many weights per step.
    expect(pgm.runs[0].weightBytesPerStep).toBeGreaterThanOrEqual(pgm.runs[1].weightBytesPerStep);

    const engine = await createEngine({ model: 'mdlm-small', maxBatch: 1 });
    let mdlm: ModelRun;
    try {
      mdlm = await measureModel(engine, workload, 1234);
    } finally {
      engine.dispose();
    }
    expect(mdlm.model).toBe('MDLM');
    expect(mdlm.runs.map((r) => r.setting)).toEqual(['MDLM']);
    expect(mdlm.loadMs).toBe(1234);
    expectTimes(mdlm);

    const chromiumHost: HostMemory = { renderer: 512.4, gpuProcess: 300 };
    const result = (adapter: FullSizeResult['adapter'], models: FullSizeResult['models']): FullSizeResult => ({
      adapter,
      date: '2026-12-07T05:00:00.000Z',
      command: 'npm run bench:full',
      workload: { ...workload, length: 256, promptTokens: 239 },
      load: { start: 3.5, end: 4.25, cores: 2 },
      conversions: [
        {
          model: 'pgm',
          dtype: 'f16',
          date: '2026-12-06T01:00:00.000Z',
          ms: 14_040,
          peakRssMiB: 175.4,
          beforeRssMiB: 120.6,
          bytes: 344_012_345,
          checkpointBytes: 2_752_173_335,
        },
      ],
      models,
    });
    const md = fullSizeMarkdown([
      result('node-swiftshader', [
        { ...pgm, dtype: 'f16' },
        { ...mdlm, dtype: 'f16', host: { process: 400, before: 300 } },
      ]),
      result('chromium-swiftshader', [
        { ...mdlm, dtype: 'f16', host: chromiumHost },
        { model: 'PGM', dtype: 'f16', error: 'buffer "logits" | too big\nfor this adapter' },
      ]),
    ]);
    const lines = md.split('\n');
    expect(lines[0]).toBe(
      'Full-size models (OWT shape, random weights, 2026-12-07): L256, 16 tokens generated after a 239-token prompt in 4 steps, batch 1.',
    );
    expect(lines).toContain('| PGM | f16 | 2752 | 344 | 14.0 | 175 (121) | 2026-12-06 |');
    const rows = lines.filter((l) => /^\| (node|chromium)-/.test(l));
    expect(rows).toHaveLength(5);
    const cells = (row: string) => row.split(' | ').map((c) => c.replace(/^\| |\s\|$/g, ''));
    const [exact, kv, mdlmNode, mdlmChromium, failed] = rows.map(cells);
    const s = pgm.runs[0];
    expect(exact).toEqual([
      'node-swiftshader',
      'PGM exact',
      (pgm.loadMs / 1000).toFixed(1),
      `${pgm.host.process.toFixed(0)} (${pgm.host.before.toFixed(0)})`,
      (pgm.gpuBytes / 2 ** 20).toFixed(0),
      `${(s.firstTokenMs / 1000).toFixed(1)} (${(s.coldFirstTokenMs / 1000).toFixed(1)})`,
      s.msPerStepP50.toFixed(0),
      s.msPerStepP95.toFixed(0),
      s.tokensPerS.toFixed(2),
      s.dispatchesPerStep.toFixed(0),
    ]);
    expect(kv.slice(0, 2)).toEqual(['node-swiftshader', 'PGM KV set (delayed)']);
    expect(mdlmNode.slice(0, 4)).toEqual(['node-swiftshader', 'MDLM', '1.2', '400 (300)']);
    expect(mdlmChromium.slice(0, 4)).toEqual([
      'chromium-swiftshader',
      'MDLM',
      '1.2',
      '512 + 300 (renderer + GPU process)',
    ]);
    expect(failed.slice(0, 3)).toEqual([
      'chromium-swiftshader',
      'PGM f16',
      'failed: buffer "logits" \\| too big for this adapter',
    ]);
    expect(lines.at(-1)).toBe(
      'Load average during the runs (2 cores): node-swiftshader 3.5-4.3, chromium-swiftshader 3.5-4.3.',
    );
  });
});
