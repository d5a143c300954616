/** bench/busy-wait.ts runs as the README says: napping and busy-polling times for both models. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

describe('bench/busy-wait.ts', () => {
  it('times the PGM and the MDLM napping and busy-polling, and their speed-ups', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/busy-wait.ts'], {
      cwd: ROOT,
      env: { ...process.env, BUSY_WAIT_REPS: '1' },
    });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/: L128, 16 steps, 1 rounds of four generations in turns$/);
    for (const [i, model] of [[1, 'PGM'], [2, 'MDLM']] as const) {
      const m = lines[i].match(new RegExp(`^${model}: napping (\\d+) ms, busy-polling (\\d+) ms, (\\d+\\.\\d\\d)x$`));
      expect(m, lines[i]).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![2])).toBeGreaterThan(0);
    }
    expect(lines[3]).toMatch(/^PGM speed-up over the MDLM: napping \d+\.\d\dx, busy-polling \d+\.\d\dx$/);
    expect(lines).toHaveLength(4);
  }, 300_000);
});
