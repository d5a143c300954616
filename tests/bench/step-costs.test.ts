/** bench/step-costs.ts runs as the README says and prints its six timed rows. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

describe('bench/step-costs.ts', () => {
  it('times a PGM step, queued steps, the forward pass and its parts, and the sampler: two positive times each', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/step-costs.ts'], {
      cwd: ROOT,
      env: { ...process.env, STEP_COSTS_REPS: '2' },
    });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/: PGM L128, 65 clean tokens, 8 queries, mean of 2, two rounds$/);
    const rows = lines.slice(1).map((line) => line.match(/^(.+): (\d+\.\d\d) ms, (\d+\.\d\d) ms$/));
    expect(rows.map((m) => m?.[1])).toEqual([
      'step, one at a time', 'steps, queued', 'forward pass (51 dispatches)', 'without layernorm and rotary', 'matmuls only', 'sampler',
    ]);
    for (const m of rows) expect(Math.min(Number(m![2]), Number(m![3]))).toBeGreaterThan(0);
  }, 300_000);
});
