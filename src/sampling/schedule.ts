import type { Rng } from './rng.js';

/** Orders in which a PGM reveals positions. */
export const ORDERS = ['random', 'left-to-right', 'confident'] as const;
export type Order = (typeof ORDERS)[number];

/** How many positions each step reveals. */
export const SCHEDULES = ['uniform', 'non-uniform'] as const;
export type Schedule = (typeof SCHEDULES)[number];

/** Log-linear noise schedule alpha(t) = 1 - (1 - eps) t, eps = 1e-3 (model.md). */
const NOISE_EPS = 1e-3;
/** Sampling runs t from 1 down to this value. */
const T_MIN = 1e-5;
export const alpha = (t: number): number => 1 - (1 - NOISE_EPS) * t;

/**
 * "efficient-uniform": `total` positions over `steps` steps, as evenly as possible with the
 * larger steps first: ceil((i+1) T / S) - ceil(i T / S). For T = L - 1 after BOS and L
 * divisible by S this is the paper's L/S per step with one fewer in the last step.
 */
export function uniformCounts(total: number, steps: number): number[] {
  return Array.from({ length: steps }, (_, i) => Math.ceil(((i + 1) * total) / steps) - Math.ceil((i * total) / steps));
}

/**
 * "efficient-non-uniform": each step reveals Binomial(length, p) positions, p the
 * probability of leaving the mask state in one step of the log-linear schedule
 * ((alpha_s - alpha_t) / (1 - alpha_t) at t = 1), capped by what is left; whatever remains
 * after `steps` steps is revealed in one last step (so there may be steps + 1).
 */
export function nonUniformCounts(total: number, steps: number, length: number, rng: Rng): number[] {
  const dt = (1 - T_MIN) / steps;
  const p = (alpha(1 - dt) - alpha(1)) / (1 - alpha(1));
  const counts: number[] = [];
  let left = total;
  for (let i = 0; i < steps; i++) {
    const k = Math.min(rng.binomial(length, p), left);
    counts.push(k);
    left -= k;
  }
  if (left > 0) counts.push(left);
  return counts;
}

/**
 * MDLM ddpm_cache: probability that a still-masked position is revealed at step i of S
 * (t = 1 - i dt, s = t - dt). After the S steps, a final step reveals every remaining mask.
 */
export function mdlmRevealProbability(i: number, steps: number): number {
  const dt = (1 - T_MIN) / steps;
  const t = 1 - i * dt;
  const s = t - dt;
  return (alpha(s) - alpha(t)) / (1 - alpha(t));
}
