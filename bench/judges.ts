/**
 * The judges of bench/quality.ts: Monte-Carlo estimates of a sequence's negative ELBO under
 * the training objectives of docs/model.md "Training" (the MDLM twin's, and the PGM's own
 * bound), the dictionary-word share of a text, and the mean with its 95% interval.
 *
 * Both bounds, for a sequence x of `length` positions with BOS at 0:
 *   NELBO(x) = E_{t ~ U(eps, 1)} E_{M ~ Bernoulli(1 - alpha(t)) per position >= 1}
 *              sum over i in M of -alpha'(t) / (1 - alpha(t)) * -log p(x_i | x outside M)
 *              / (length - 1)
 * in nats per generated token, with alpha'(t) / (1 - alpha(t)) = -1/t for the log-linear
 * schedule and the mask token excluded from the softmax (as in training). BOS is never in M.
 * MDLM: p reads the sequence with M replaced by the mask token; PGM: clean = the positions
 * outside M (BOS included), queries = M.
 */
import type { GpuModel } from '../src/model/gpu-model.js';
import { Rng } from '../src/sampling/rng.js';
import { alpha } from '../src/sampling/schedule.js';

/** The log-linear schedule's eps: alpha(1) = eps. */
const EPS = alpha(1);

/** One noise draw of a sequence: its time and the positions it masks (group 1 for the PGM), ascending. */
export interface NoiseDraw {
  t: number;
  masked: number[];
}

/**
 * `draws` times stratified over [eps, 1]: t_k = eps + (1 - eps) (u + k) / draws with one
 * u ~ U(0, 1), the training's antithetic `sample_t` taken across one sequence's draws. Each
 * t_k is uniform on its stratum, so their mean is an unbiased estimate of E_t.
 */
export function stratifiedTimes(draws: number, rng: Rng): number[] {
  const u = rng.next();
  return Array.from({ length: draws }, (_, k) => EPS + ((1 - EPS) * (u + k)) / draws);
}

/**
 * `draws` (even) noise draws of a sequence of `length` positions, as two independent halves,
 * each with its own stratified times, so the halves' difference measures the Monte-Carlo error
 * (NelboEstimate.mcVariance). Position 0 (BOS) is never masked.
 */
export function noiseDraws(length: number, draws: number, rng: Rng): NoiseDraw[] {
  if (!Number.isInteger(draws) || draws < 2 || draws % 2)
    throw new Error(`noise draws come in two stratified halves: needs an even number >= 2, got ${draws}`);
  const times = [...stratifiedTimes(draws / 2, rng), ...stratifiedTimes(draws / 2, rng)];
  return times.map((t) => {
    const masked: number[] = [];
    for (let i = 1; i < length; i++) if (rng.next() < 1 - alpha(t)) masked.push(i);
    return { t, masked };
  });
}

/** A model's -log p(x_i | the unmasked part) at each masked position of each job, in `draw.masked` order. */
export type MaskedNll = (jobs: readonly { tokens: ArrayLike<number>; draw: NoiseDraw }[]) => Promise<Float64Array[]>;

/** One draw's NELBO term in nats per generated token: (1 - eps) / (1 - alpha(t)) = 1/t times each masked -log p, over length - 1. */
export function drawNelbo(draw: NoiseDraw, nll: ArrayLike<number>, length: number): number {
  let sum = 0;
  for (let j = 0; j < nll.length; j++) sum += nll[j];
  return (((1 - EPS) / (1 - alpha(draw.t))) * sum) / (length - 1);
}

/**
 * A sequence's estimate: the mean of its draws' terms, each term, and the unbiased estimate of
 * the mean's Monte-Carlo variance from the two independent halves: (mean A - mean B)^2 / 4.
 */
export interface NelboEstimate {
  mean: number;
  terms: number[];
  mcVariance: number;
}

/**
 * NELBO estimates of `sequences` (model ids, BOS at 0), `draws` noise draws each; sequence
 * i's draws come from Rng(seeds[i]), so equal seeds give equal masks (common random numbers
 * between the settings a study compares). Forward passes take `batch` jobs at a time; a draw
 * that masks nothing contributes 0 without one.
 */
export async function estimateNelbo(
  sequences: readonly ArrayLike<number>[],
  nll: MaskedNll,
  options: { draws: number; seeds: readonly number[]; batch: number },
): Promise<NelboEstimate[]> {
  const { draws, seeds, batch } = options;
  const terms = sequences.map(() => new Array<number>(draws).fill(0));
  const jobs = sequences.flatMap((tokens, i) =>
    noiseDraws(tokens.length, draws, new Rng(seeds[i]))
      .map((draw, k) => ({ i, k, tokens, draw }))
      .filter((job) => job.draw.masked.length > 0),
  );
  for (let start = 0; start < jobs.length; start += batch) {
    const chunk = jobs.slice(start, start + batch);
    const out = await nll(chunk);
    chunk.forEach((job, j) => (terms[job.i][job.k] = drawNelbo(job.draw, out[j], job.tokens.length)));
  }
  const average = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  return terms.map((t) => ({
    mean: average(t),
    terms: t,
    mcVariance: (average(t.slice(0, draws / 2)) - average(t.slice(draws / 2))) ** 2 / 4,
  }));
}

/** -log softmax(logits)[target] over one row of V logits, the mask token left out (float64). */
export function nllExcluding(
  logits: Float32Array,
  offset: number,
  V: number,
  target: number,
  excluded: number,
): number {
  let max = -Infinity;
  for (let v = 0; v < V; v++) if (v !== excluded && logits[offset + v] > max) max = logits[offset + v];
  let sum = 0;
  for (let v = 0; v < V; v++) if (v !== excluded) sum += Math.exp(logits[offset + v] - max);
  return max + Math.log(sum) - logits[offset + target];
}

/** The MDLM judge: each job's sequence with its masked positions set to the mask token, one forward over all positions. */
export function mdlmNll(model: GpuModel): MaskedNll {
  const { vocabSize: V, maskId } = model.config;
  return async (jobs) => {
    const n = jobs[0].tokens.length;
    const logits = await model.mdlmLogits(
      jobs.map(({ tokens, draw }) => {
        const input = Array.from(tokens);
        for (const i of draw.masked) input[i] = maskId;
        return { tokens: input };
      }),
    );
    return jobs.map(({ tokens, draw }, b) =>
      Float64Array.from(draw.masked, (i) => nllExcluding(logits, (b * n + i) * V, V, tokens[i], maskId)),
    );
  };
}

/** The PGM's own bound: clean = the unmasked tokens at their positions (BOS included), queries = the masked positions. */
export function pgmNll(model: GpuModel): MaskedNll {
  const { vocabSize: V, maskId } = model.config;
  return async (jobs) => {
    const sequences = jobs.map(({ tokens, draw }) => {
      const inMask = new Uint8Array(tokens.length);
      for (const i of draw.masked) inMask[i] = 1;
      const positions: number[] = [];
      for (let i = 0; i < tokens.length; i++) if (!inMask[i]) positions.push(i);
      return { tokens: positions.map((i) => tokens[i]), positions, queries: draw.masked };
    });
    const maxQueries = Math.max(...sequences.map((s) => s.queries.length));
    const logits = await model.pgmLogits(sequences);
    return jobs.map(({ tokens, draw }, b) =>
      Float64Array.from(draw.masked, (i, j) => nllExcluding(logits, (b * maxQueries + j) * V, V, tokens[i], maskId)),
    );
  };
}

/**
 * The words of `text` (split at whitespace and at dashes: "ideas--I" is two words, edge
 * punctuation stripped, curly apostrophes made straight) that contain a letter, and how many
 * of them `dictionary` (lower-case words) holds, as written or lower-cased.
 */
export function wordShare(
  text: string,
  dictionary: ReadonlySet<string>,
): { words: number; known: number; share: number } {
  let words = 0;
  let known = 0;
  for (const raw of text.split(/\s+|-{2,}|\u2014/)) {
    const word = raw.replace(/[\u2018\u2019]/g, "'").replace(/^[^\p{L}]+|[^\p{L}]+$/gu, '');
    if (!/\p{L}/u.test(word)) continue;
    words++;
    if (dictionary.has(word) || dictionary.has(word.toLowerCase())) known++;
  }
  return { words, known, share: words ? known / words : 0 };
}

/** Student's t quantile t_{0.975, df} (Cornish-Fisher expansion around 1.96: within 0.7% for df >= 3, 3e-4 for df >= 10). */
function t975(df: number): number {
  const z = 1.959964;
  return (
    z +
    (z ** 3 + z) / (4 * df) +
    (5 * z ** 5 + 16 * z ** 3 + 3 * z) / (96 * df ** 2) +
    (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / (384 * df ** 3)
  );
}

/** Mean, sample standard deviation, standard error and the half-width of the 95% interval (Student t, n - 1 df). */
export interface MeanCi {
  n: number;
  mean: number;
  sd: number;
  se: number;
  ci95: number;
}

export function meanCi(values: readonly number[]): MeanCi {
  const n = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (n - 1)) : 0;
  const se = sd / Math.sqrt(n);
  return { n, mean, sd, se, ci95: n > 1 ? t975(n - 1) * se : Infinity };
}

/** The Monte-Carlo part of the standard error of a mean over sequences: sqrt(sum of their mcVariance) / n. */
export function monteCarloSe(estimates: readonly NelboEstimate[]): number {
  return Math.sqrt(estimates.reduce((a, e) => a + e.mcVariance, 0)) / estimates.length;
}
