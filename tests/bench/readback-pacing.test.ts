/** bench/readback-pacing.ts runs as the README says: paced and busy-polling times for both models, and a pacer that slept. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

describe('bench/readback-pacing.ts', () => {
  it('times the PGM and the MDLM paced and busy-polling, and counts the PGM pacer\'s waits', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'bench/readback-pacing.ts'], {
      cwd: ROOT,
      env: { ...process.env, PACING_REPS: '1' },
    });
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toMatch(/: L128, 16 steps, 1 rounds of four generations in turns$/);
    for (const [i, model] of [[1, 'PGM'], [2, 'MDLM']] as const) {
      const m = lines[i].match(new RegExp(`^${model}: paced (\\d+) ms, busy-polling (\\d+) ms, (\\d+\\.\\d\\d)x$`));
      expect(m, lines[i]).not.toBeNull();
      expect(Number(m![1])).toBeGreaterThan(0);
      expect(Number(m![2])).toBeGreaterThan(0);
    }
    expect(lines[3]).toMatch(/^PGM speed-up over the MDLM: paced \d+\.\d\dx, busy-polling \d+\.\d\dx$/);
    // The warm-up generation and one round: 32 waits, of which the second generation's slept.
    const counts = lines[4].match(/^PGM pacer: (\d+) waits, (\d+) slept first, (\d+) overslept$/);
    expect(counts, lines[4]).not.toBeNull();
    expect(Number(counts![1])).toBe(32);
    expect(Number(counts![2])).toBeGreaterThanOrEqual(16);
  }, 300_000);
});
