import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/sampling/rng.js';
import { alpha, mdlmRevealProbability, nonUniformCounts, uniformCounts } from '../../src/sampling/schedule.js';

describe('schedules', () => {
  it('uniform: the paper case (L = 1024, 128 steps, BOS known) is 8 per step, 7 in the last', () => {
    const counts = uniformCounts(1023, 128);
    expect(counts.slice(0, 127).every((c) => c === 8)).toBe(true);
    expect(counts[127]).toBe(7);
  });

  it('uniform: every step reveals at least one position and the counts sum to the total', () => {
    for (const [total, steps] of [
      [10, 4],
      [10, 10],
      [63, 16],
      [255, 64],
      [7, 1],
      [100, 99],
    ]) {
      const counts = uniformCounts(total, steps);
      expect(counts).toHaveLength(steps);
      expect(counts.reduce((a, b) => a + b, 0)).toBe(total);
      expect(Math.min(...counts)).toBeGreaterThanOrEqual(1);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
  });

  it('non-uniform: binomial counts around length/steps, the rest in one last step', () => {
    const rng = new Rng(3);
    const counts = nonUniformCounts(255, 32, 256, rng);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(255);
    expect(counts.length === 32 || counts.length === 33).toBe(true);
    const mean = counts.slice(0, 32).reduce((a, b) => a + b, 0) / 32;
    expect(mean).toBeGreaterThan(5);
    expect(mean).toBeLessThan(11);
    expect(new Set(counts.slice(0, 32)).size).toBeGreaterThan(2); // not constant
  });

  it('MDLM reveal probability follows the log-linear schedule', () => {
    expect(alpha(1)).toBeCloseTo(1e-3, 12);
    expect(alpha(0)).toBe(1);
    expect(mdlmRevealProbability(0, 10)).toBeCloseTo(0.1, 3);
    // the chance of being revealed by the end of step i grows to ~1 at the last step
    let stillMasked = 1;
    for (let i = 0; i < 10; i++) stillMasked *= 1 - mdlmRevealProbability(i, 10);
    expect(stillMasked).toBeLessThan(2e-3);
  });

  it('the host RNG is deterministic per seed', () => {
    const a = new Rng(42).shuffle([...Array(20).keys()]);
    const b = new Rng(42).shuffle([...Array(20).keys()]);
    const c = new Rng(43).shuffle([...Array(20).keys()]);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect([...a].sort((x, y) => x - y)).toEqual([...Array(20).keys()]);
  });
});
