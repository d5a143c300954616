/**
 * A bounded, deterministic share of scripts/fuzz.ts: mutated and truncated checkpoints,
 * safetensors shards, config.json and weights-manifest.json. Every case must end in success
 * or a PgmError, within 2 s of CPU time (10 s of wall time is a hang: the machine is shared),
 * without allocating more than twice its input's size at once; a damaged shard must be
 * refused by its size or sha256. The long run: `npx tsx scripts/fuzz.ts --cases 100000 --seed 7`.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { formatReport, fuzz, fuzzTargets, type FuzzKind, type FuzzTarget } from '../../scripts/fuzz.js';

const SEED = 20250607;
/** Cases per kind, and the wall time each may take on a loaded 2-core machine (the file stays under a minute). */
const PLAN: Record<FuzzKind, { cases: number; budgetMs: number }> = {
  ckpt: { cases: 500, budgetMs: 20_000 },
  safetensors: { cases: 2500, budgetMs: 7_000 },
  config: { cases: 2500, budgetMs: 7_000 },
  manifest: { cases: 2500, budgetMs: 7_000 },
};
/** Largest single allocation a case may make, relative to the bytes it was given. */
const MAX_ALLOCATION_RATIO = 2;
const CASE_CPU_LIMIT_MS = 2000;

let targets: FuzzTarget[];
beforeAll(async () => {
  targets = await fuzzTargets();
});

describe('fuzzing the file readers', () => {
  it('has every fixture checkpoint and the files converting them gives', () => {
    const count = (kind: FuzzKind) => targets.filter((t) => t.kind === kind).length;
    expect(count('ckpt')).toBeGreaterThanOrEqual(8);
    expect(count('safetensors')).toBe(count('ckpt') + 2);
    expect(count('config')).toBe(count('ckpt'));
    expect(count('manifest')).toBe(1);
  });

  for (const [kind, { cases, budgetMs }] of Object.entries(PLAN) as [FuzzKind, (typeof PLAN)[FuzzKind]][]) {
    it(`${kind}: success or a PgmError, no hang, bounded allocation`, async () => {
      const report = await fuzz(targets, {
        kinds: [kind],
        cases,
        seed: SEED,
        timeBudgetMs: budgetMs,
        caseCpuLimitMs: CASE_CPU_LIMIT_MS,
      });
      console.log(formatReport(report));
      expect(report.crashes).toEqual([]);
      expect(report.hangs).toEqual([]);
      expect(report.slow).toEqual([]);
      expect(report.violations).toEqual([]);
      // The time budget stops a busy machine early; it must still have tried a fair share.
      expect(report.cases).toBeGreaterThanOrEqual(Math.min(cases, 50));
      expect(report.maxCaseCpuMs).toBeLessThan(CASE_CPU_LIMIT_MS);
      expect(report.maxAllocationRatio).toBeLessThan(MAX_ALLOCATION_RATIO);
      // Mutations must reach past the first check: some cases succeed, several kinds of error occur.
      const stats = report.byKind[kind];
      expect(stats.ok).toBeGreaterThan(0);
      expect(Object.keys(stats.errors).length).toBeGreaterThanOrEqual(2);
    });
  }
});
