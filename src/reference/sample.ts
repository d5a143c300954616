/**
 * The oracle for the GPU sampler: the exact distribution one token is drawn from, given
 * one row of logits. Computed in float64.
 */
import { fail } from '../errors.js';

export interface SamplingDistributionOptions {
  /** Divides the logits before the softmax; must be > 0 unless `greedy`. */
  temperature: number;
  /** Nucleus mass in (0, 1]; 1 turns the filter off. */
  topP: number;
  /** The mask token, which is never sampled. */
  maskId: number;
  /** Put all the mass on the most likely token. */
  greedy: boolean;
}

/**
 * The sampling distribution `[V]` of one logits row, step by step:
 * 1. The mask token gets probability 0 and takes no part in what follows.
 * 2. `greedy`: probability 1 on the largest logit (the lowest id among equal ones);
 *    temperature and topP play no role.
 * 3. `p = softmax(logits / temperature)` over the other tokens.
 * 4. `topP < 1`: keep each token whose strictly more probable tokens hold a mass `<= topP`.
 *    In decreasing-probability order that is the shortest prefix whose mass exceeds `topP`
 *    (the authors' `top_k_top_p_filtering` removes a token when the cumulative mass before
 *    it is `> top_p`); the top token is always kept. Tokens of equal probability are kept or
 *    dropped together, so the nucleus never depends on token ids (the authors' sort breaks
 *    such ties arbitrarily).
 * 5. The kept probabilities are renormalised to sum to 1.
 * Unlike the authors' code, which applies the nucleus to the raw logits with the mask
 * token still in and only then sets the mask's logit to -inf, the mask is left out first,
 * so its (tiny) mass never counts towards the nucleus; the authors' code has no temperature.
 */
export function samplingDistribution(logits: Float32Array, opts: SamplingDistributionOptions): Float64Array {
  const { temperature, topP, maskId, greedy } = opts;
  const V = logits.length;
  if (!Number.isInteger(maskId) || maskId < 0 || maskId >= V)
    fail('option', `maskId ${maskId} is outside the vocabulary [0, ${V})`);
  if (!(topP > 0 && topP <= 1)) fail('option', `topP must be in (0, 1], got ${topP}`);
  if (!greedy && !(temperature > 0 && Number.isFinite(temperature))) {
    fail('option', `temperature must be a positive number, got ${temperature}; use greedy for argmax decoding`);
  }
  const candidates = Array.from({ length: V }, (_, i) => i).filter((i) => i !== maskId);
  const probs = new Float64Array(V);

  if (greedy) {
    let best = candidates[0];
    for (const i of candidates) if (logits[i] > logits[best]) best = i;
    probs[best] = 1;
    return probs;
  }

  let max = -Infinity;
  for (const i of candidates) max = Math.max(max, logits[i] / temperature);
  let total = 0;
  for (const i of candidates) {
    probs[i] = Math.exp(logits[i] / temperature - max);
    total += probs[i];
  }
  for (const i of candidates) probs[i] /= total;
  if (topP >= 1) return probs;

  const order = candidates.sort((a, b) => probs[b] - probs[a]);
  let kept = 0; // mass of the tokens kept so far
  let above = 0; // mass of the tokens strictly more probable than the current one
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    if (k > 0 && probs[i] < probs[order[k - 1]]) above = kept;
    if (above > topP) probs[i] = 0;
    else kept += probs[i];
  }
  for (const i of order) probs[i] /= kept;
  return probs;
}
