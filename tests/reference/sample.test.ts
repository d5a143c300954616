import { describe, expect, it } from 'vitest';
import { PgmError } from '../../src/errors.js';
import { samplingDistribution } from '../../src/reference/sample.js';

const sum = (p: ArrayLike<number>): number => Array.from(p).reduce((a, b) => a + b, 0);

/** Logits whose softmax (over all of them) is exactly `probs`. */
const logitsOf = (probs: number[]): Float32Array => Float32Array.from(probs, (p) => (p > 0 ? Math.log(p) : -Infinity));

describe('samplingDistribution', () => {
  const base = { temperature: 1, topP: 1, greedy: false };

  it('is the softmax over every token but the mask', () => {
    const logits = Float32Array.from([1, 2, 3, 10]);
    const p = samplingDistribution(logits, { ...base, maskId: 3 });
    const z = Math.exp(1) + Math.exp(2) + Math.exp(3);
    expect(p[3]).toBe(0);
    [1, 2, 3].forEach((l, i) => expect(p[i]).toBeCloseTo(Math.exp(l) / z, 12));
    expect(sum(p)).toBeCloseTo(1, 12);
  });

  it('divides the logits by the temperature before the softmax', () => {
    const logits = Float32Array.from([0, 1, 2, 0]);
    const p = samplingDistribution(logits, { ...base, temperature: 0.5, maskId: 3 });
    const z = 1 + Math.exp(2) + Math.exp(4);
    expect(p[2]).toBeCloseTo(Math.exp(4) / z, 12);
    const flat = samplingDistribution(logits, { ...base, temperature: 1e6, maskId: 3 });
    for (let i = 0; i < 3; i++) expect(flat[i]).toBeCloseTo(1 / 3, 5);
  });

  it('greedy puts all the mass on the largest non-mask logit, lowest id on ties', () => {
    const logits = Float32Array.from([1, 5, 5, 9]);
    const p = samplingDistribution(logits, { ...base, greedy: true, temperature: 0, maskId: 3 });
    expect([...p]).toEqual([0, 1, 0, 0]);
  });

  it('keeps the shortest prefix whose mass exceeds topP, then renormalises', () => {
    // Sorted: 0.4 (id 2), 0.3 (id 0), 0.2 (id 3), 0.1 (id 1); id 4 is the mask.
    const logits = logitsOf([0.3, 0.1, 0.4, 0.2, 0]);
    logits[4] = 100;
    const opts = { ...base, maskId: 4 };
    const check = (topP: number, kept: number[]): void => {
      const p = samplingDistribution(logits, { ...opts, topP });
      const mass = kept.reduce((a, i) => a + [0.3, 0.1, 0.4, 0.2][i], 0);
      for (let i = 0; i < 5; i++) expect(p[i]).toBeCloseTo(kept.includes(i) ? [0.3, 0.1, 0.4, 0.2][i] / mass : 0, 6);
    };
    check(0.01, [2]); // always at least the top token
    check(0.39, [2]);
    check(0.41, [2, 0]);
    check(0.69, [2, 0]);
    check(0.71, [2, 0, 3]);
    check(0.95, [2, 0, 3, 1]);
    check(1, [2, 0, 3, 1]);
  });

  it('applies the nucleus after the temperature', () => {
    const logits = Float32Array.from([2, 1, 0, -50]);
    // At temperature 1 the top token holds ~0.67 of the mass; at 10 only ~0.37.
    expect(samplingDistribution(logits, { ...base, topP: 0.5, maskId: 3 })[1]).toBe(0);
    expect(samplingDistribution(logits, { ...base, topP: 0.5, temperature: 10, maskId: 3 })[1]).toBeGreaterThan(0);
  });

  it('rejects invalid options', () => {
    const logits = new Float32Array(4);
    expect(() => samplingDistribution(logits, { ...base, maskId: 4 })).toThrow(PgmError);
    expect(() => samplingDistribution(logits, { ...base, maskId: 3, topP: 0 })).toThrow(PgmError);
    expect(() => samplingDistribution(logits, { ...base, maskId: 3, temperature: 0 })).toThrow(PgmError);
  });
});
