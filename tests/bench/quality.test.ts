/**
 * The judges of bench/quality.ts (bench/judges.ts): the stratified Monte-Carlo NELBO estimator
 * against an exact computation on a tiny case, the MDLM and PGM judges on the shipped models
 * (English text must score far better than random tokens), the word share and the interval.
 */
import { describe, expect, it } from 'vitest';
import {
  estimateNelbo,
  mdlmNll,
  meanCi,
  noiseDraws,
  pgmNll,
  stratifiedTimes,
  wordShare,
  type MaskedNll,
} from '../../bench/judges.js';
import { Rng } from '../../src/sampling/rng.js';
import { alpha } from '../../src/sampling/schedule.js';

const EPS = alpha(1);

describe('NELBO estimator', () => {
  it('stratifies t over [eps, 1], one draw per stratum, and never masks BOS', () => {
    const rng = new Rng(3);
    for (let rep = 0; rep < 50; rep++) {
      const times = stratifiedTimes(4, rng);
      times.forEach((t, k) => {
        expect(t).toBeGreaterThanOrEqual(EPS + ((1 - EPS) * k) / 4);
        expect(t).toBeLessThan(EPS + ((1 - EPS) * (k + 1)) / 4);
      });
    }
    const draws = noiseDraws(32, 64, new Rng(4));
    expect(draws.every((d) => !d.masked.includes(0) && d.masked.every((i) => i >= 1 && i < 32))).toBe(true);
    // Near t = 1 almost everything after BOS is masked.
    expect(draws.at(-1)!.masked.length).toBeGreaterThan(25);
  });

  it('is unbiased: its mean over many runs matches the exact integral over t and all masks', async () => {
    // A synthetic model: -log p grows with the position and with how much is masked.
    const nllOf = (i: number, masked: number) => 0.5 + 0.7 * i + 0.3 * masked;
    const nll: MaskedNll = async (jobs) =>
      jobs.map(({ draw }) => Float64Array.from(draw.masked, (i) => nllOf(i, draw.masked.length)));
    const length = 4; // BOS + 3 maskable positions
    // Exact: E_{t ~ U(eps, 1)} sum over masks M of P(M | t) (1/t) sum_{i in M} nll(i, M) / (length - 1),
    // a polynomial in t of degree 2 (each P(M) with M non-empty carries a factor t), so Simpson's rule is exact.
    const f = (t: number) => {
      const p = 1 - alpha(t);
      let sum = 0;
      for (let m = 1; m < 8; m++) {
        const members = [1, 2, 3].filter((i) => m & (1 << (i - 1)));
        const prob = p ** members.length * (1 - p) ** (3 - members.length);
        sum += (prob / t) * members.reduce((a, i) => a + nllOf(i, members.length), 0);
      }
      return sum / (length - 1);
    };
    const intervals = 200;
    const h = (1 - EPS) / intervals;
    let integral = f(EPS) + f(1);
    for (let j = 1; j < intervals; j++) integral += (j % 2 ? 4 : 2) * f(EPS + j * h);
    const exact = (integral * h) / 3 / (1 - EPS);

    const runs = 20_000;
    const sequence = [7, 1, 2, 3];
    const estimates = await estimateNelbo(
      Array.from({ length: runs }, () => sequence),
      nll,
      { draws: 4, seeds: Array.from({ length: runs }, (_, i) => i), batch: 4096 },
    );
    const { mean, sd, se } = meanCi(estimates.map((e) => e.mean));
    expect(se).toBeLessThan(0.01 * exact);
    expect(Math.abs(mean - exact)).toBeLessThan(4 * se);
    // The halves' Monte-Carlo variance is unbiased: here all spread is Monte Carlo.
    expect(Math.sqrt(estimates.reduce((a, e) => a + e.mcVariance, 0) / runs) / sd).toBeCloseTo(1, 1);
  });
});

describe('judges on the shipped models', () => {
  it('the MDLM twin and the PGM give English text a far lower NELBO than random tokens', async () => {
    const { createEngine } = await import('../../src/node.js');
    const pgm = await createEngine({ maxBatch: 4 });
    const mdlm = await createEngine({ model: 'mdlm-small', maxBatch: 4 });
    try {
      const { bosId, vocabSize } = pgm.gpuModel.config;
      const english = [
        bosId,
        ...pgm.vocabulary.encode(
          'It is a truth universally acknowledged, that a single man in possession of a good fortune, must be in want of a wife. And God said, Let there be light: and there was light.',
        ),
      ];
      const rng = new Rng(11);
      const random = [bosId, ...Array.from({ length: english.length - 1 }, () => Math.floor(rng.next() * bosId))];
      const options = { draws: 4, seeds: [1, 2], batch: 4 };
      const [byMdlm, byPgm] = [
        await estimateNelbo([english, random], mdlmNll(mdlm.gpuModel), options),
        await estimateNelbo([english, random], pgmNll(pgm.gpuModel), options),
      ];
      for (const [englishNelbo, randomNelbo] of [byMdlm.map((e) => e.mean), byPgm.map((e) => e.mean)]) {
        expect(englishNelbo).toBeGreaterThan(0);
        expect(englishNelbo).toBeLessThan(Math.log(vocabSize) - 2);
        expect(randomNelbo).toBeGreaterThan(englishNelbo + 3);
      }
    } finally {
      pgm.dispose();
      mdlm.dispose();
    }
  });
});

describe('word share and interval', () => {
  it('counts dictionary words among the words that contain a letter', () => {
    const dictionary = new Set(['the', 'cat', 'sat', 'on', 'mat', "don't"]);
    const r = wordShare('The cat--sat, on "the" mat. 42 -- zzqx don’t!', dictionary);
    expect(r).toEqual({ words: 8, known: 7, share: 7 / 8 });
    expect(wordShare('', dictionary).share).toBe(0);
  });

  it('gives the Student t interval', () => {
    const c = meanCi([1, 2, 3, 4]);
    expect(c.mean).toBe(2.5);
    expect(c.sd).toBeCloseTo(Math.sqrt(5 / 3), 12);
    // t(0.975, 3) = 3.1824: the expansion is within 1% there.
    expect(c.ci95 / c.se).toBeCloseTo(3.18, 1);
    const wide = meanCi(Array.from({ length: 64 }, (_, i) => i % 2));
    expect(wide.ci95 / wide.se).toBeCloseTo(1.9983, 3);
  });
});
