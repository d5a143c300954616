/** The bench's Node scripts run as the README says and print what it says they print. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** The lines `npx tsx <script>` prints with `env` added. */
async function run(script: string, env: Record<string, string>): Promise<string[]> {
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  return stdout.trim().split('\n');
}

describe('bench/step-costs.ts', () => {
  it('times a PGM step, queued steps, the forward pass and its parts, and the sampler: two positive times each', async () => {
    const lines = await run('bench/step-costs.ts', { STEP_COSTS_REPS: '2' });
    expect(lines[0]).toMatch(/: PGM L128, 65 clean tokens, 8 queries, mean of 2, two rounds$/);
    const rows = lines.slice(1).map((line) => line.match(/^(.+): (\d+\.\d\d) ms, (\d+\.\d\d) ms$/));
    expect(rows.map((m) => m?.[1])).toEqual([
      'step, one at a time',
      'steps, queued',
      'forward pass (28 dispatches)',
      'matmuls only',
      'without the matmuls',
      'sampler',
    ]);
    for (const m of rows) expect(Math.min(Number(m![2]), Number(m![3]))).toBeGreaterThan(0);
  }, 300_000);
});

describe('bench/busy-wait.ts', () => {
  it('times the PGM and the MDLM napping and busy-polling, and their speed-ups', async () => {
    const lines = await run('bench/busy-wait.ts', { BUSY_WAIT_REPS: '1' });
    expect(lines[0]).toMatch(/: L128, 16 steps, 1 rounds of four generations in turns$/);
    for (const [i, model] of [
      [1, 'PGM'],
      [2, 'MDLM'],
    ] as const) {
      const m = lines[i].match(new RegExp(`^${model}: napping (\\d+) ms, busy-polling (\\d+) ms, (\\d+\\.\\d\\d)x$`));
      expect(m, lines[i]).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![2])).toBeGreaterThan(0);
    }
    expect(lines[3]).toMatch(/^PGM speed-up over the MDLM: napping \d+\.\d\dx, busy-polling \d+\.\d\dx$/);
    expect(lines).toHaveLength(4);
  }, 300_000);
});

describe('npm run bench:node -- --kv N', () => {
  it.each([['0'], ['x'], ['1.5']])(
    'refuses --kv %s with a usage line and exit code 2, before any GPU work',
    async (n) => {
      const failed = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/node.ts', '--kv', n], {
        cwd: ROOT,
      }).then(
        () => undefined,
        (e: { code: number; stderr: string }) => e,
      );
      expect(failed?.code).toBe(2);
      expect(failed?.stderr).toContain(`bench: --kv needs a number of seeds >= 1, got ${n}`);
    },
    60_000,
  );
});
