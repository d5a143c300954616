import { PgmError, fail } from '../errors.js';
import type { DrawnTokens, GpuModel } from '../model/gpu-model.js';
import { Rng } from './rng.js';
import { mdlmRevealProbability, nonUniformCounts, uniformCounts, type Order, type Schedule } from './schedule.js';

/** One sequence to generate: tokens already known (model ids) at their positions, and its seed. */
export interface SequencePlan {
  /** Known tokens by position; position 0 must hold BOS. Prompt and infill segments go here. */
  known: ReadonlyMap<number, number>;
  seed: number;
}

export interface SamplingOptions {
  /** Generate positions < length (<= the model length L). */
  length: number;
  /** Number of steps: PGM 1..(positions to generate), MDLM 1..MDLM_STEPS_PER_POSITION x that. */
  steps: number;
  order: Order;
  schedule: Schedule;
  temperature: number;
  topP: number;
  greedy: boolean;
  /**
   * PGM: encode every clean token each step (exact), only the ones that joined since the last
   * pass (incremental), those and, once more, the ones that joined the pass before (delayed), or
   * those and the kept ones the GPU finds stale (adaptive).
   */
  encoder: EncoderMode;
  /** Not exact: steps with step % refresh == 0 re-encode every clean token; 0 = never. */
  refresh: number;
  /** Adaptive (required there): re-encode a kept token whose unseen share of its first-block attention exceeds this. */
  staleness?: number;
}

/**
 * Plain sampling settings: random order, uniform schedule, temperature 1, no nucleus, the exact
 * encoder; `o` overrides. What the tests and the bench run unless they say otherwise (the
 * engine's own defaults, with the model's nucleus, are resolveGenerationOptions').
 */
export const plainSampling = (length: number, steps: number, o: Partial<SamplingOptions> = {}): SamplingOptions => ({
  length,
  steps,
  order: 'random',
  schedule: 'uniform',
  temperature: 1,
  topP: 1,
  greedy: false,
  encoder: 'exact',
  refresh: 0,
  ...o,
});

export const ENCODER_MODES = ['exact', 'incremental', 'delayed', 'adaptive'] as const;
export type EncoderMode = (typeof ENCODER_MODES)[number];

/** What one step revealed, per sequence of the batch. */
export interface BatchStep {
  step: number;
  /** Steps planned (the longest plan of the batch). */
  steps: number;
  revealed: { position: number; token: number }[][];
  /** Model ids by position, -1 where unknown, per sequence. */
  tokens: Int32Array[];
  /** Did this step run the network (MDLM reuses logits when nothing changed)? */
  forward: boolean;
  /** Rows the encoder and decoder processed this step (PGM: clean tokens and queries; MDLM: positions). */
  encoderRows: number[];
  decoderRows: number[];
}

/**
 * MDLM steps are time steps, not reveal counts: beyond one per position most steps reveal
 * nothing (and run no forward pass), but each still costs a sampler pass over every position.
 * Four per position to generate bounds the work while leaving room for the fine time grids
 * MDLM is evaluated with.
 */
export const MDLM_STEPS_PER_POSITION = 4;

/** The positions a plan leaves to generate; a plan the engine's option resolution would not make is an error. */
function checkPlan(plan: SequencePlan, o: SamplingOptions, bosId: number, V: number, b: number): number[] {
  if (plan.known.get(0) !== bosId) fail('option', `sequence ${b}: position 0 must hold BOS (${bosId})`);
  for (const [p, t] of plan.known) {
    if (!Number.isInteger(p) || p < 0 || p >= o.length)
      fail(
        'option',
        `sequence ${b}: known token at position ${p} is outside [0, ${o.length}) (the prompt is longer than length?)`,
      );
    if (!Number.isInteger(t) || t < 0 || t >= V - 1)
      fail('option', `sequence ${b}: token ${t} at position ${p} is not a model token id`);
  }
  if (!Number.isInteger(plan.seed)) fail('option', `sequence ${b}: seed must be an integer, got ${plan.seed}`);
  const free: number[] = [];
  for (let p = 0; p < o.length; p++) if (!plan.known.has(p)) free.push(p);
  if (free.length === 0) fail('option', `sequence ${b}: nothing to generate (every position < ${o.length} is known)`);
  return free;
}

/**
 * Finite logits always give a real token whose probability is in (0, 1]: Gumbel noise spans
 * less than 20, so the drawn token's scaled logit is within 20 of the maximum, and its
 * probability at least e^-20 / V. No token, or a probability that is 0 or not a number, means
 * the logits held NaN or infinities, and what was drawn means nothing.
 */
function checkDrawn(
  out: { tokens: Int32Array; probs: Float32Array },
  row: number,
  V: number,
  maskId: number,
  step: number,
  position: number,
): void {
  const token = out.tokens[row];
  if (token < 0) return;
  const prob = out.probs[row];
  if (token >= V || token === maskId || !(prob > 0 && prob <= 1)) {
    fail(
      'non-finite',
      `the model's logits are not finite (NaN or infinite) at step ${step}, position ${position}: its weights hold NaN or infinite values, or overflow f32; check the checkpoint (pgm convert reads the EMA weights unless --no-ema)`,
    );
  }
}

const throwIfAborted = (signal?: AbortSignal): void => {
  if (signal?.aborted) throw new PgmError('aborted', 'generation aborted');
};

/**
 * PGM sampling: each step, the encoder runs over the clean tokens of each sequence (exact:
 * all of them; incremental: those that joined since the previous pass, against the KV set of
 * the others) and the decoder over exactly this step's queries; drawn tokens join the clean
 * set in place, on the GPU. In the random and left-to-right orders a step's queries do not
 * depend on what the previous step drew, so one step stays in flight: step s + 1 is submitted
 * before step s's draws are read back, and the readback's round trip overlaps GPU work
 * (`overlap: false` runs one step at a time: profiling a step's dispatches).
 */
export async function* samplePgm(
  model: GpuModel,
  plans: readonly SequencePlan[],
  o: SamplingOptions,
  signal?: AbortSignal,
  { overlap = true } = {},
): AsyncGenerator<BatchStep> {
  const { config } = model;
  const tokens = plans.map(() => new Int32Array(o.length).fill(-1));
  const queue: number[][] = []; // positions still to reveal, in reveal order (confident: any order)
  const counts: number[][] = [];
  const clean: number[] = [];
  plans.forEach((plan, b) => {
    const free = checkPlan(plan, o, config.bosId, config.vocabSize, b);
    const rng = new Rng(plan.seed);
    queue.push(o.order === 'random' ? rng.shuffle(free) : free);
    counts.push(
      o.schedule === 'uniform'
        ? uniformCounts(free.length, o.steps)
        : nonUniformCounts(free.length, o.steps, o.length, rng),
    );
    const known = [...plan.known].sort((x, y) => x[0] - y[0]);
    for (const [p, t] of known) tokens[b][p] = t;
    model.writeClean(
      b,
      0,
      known.map((k) => k[1]),
      known.map((k) => k[0]),
    );
    clean.push(known.length);
  });
  model.writeSeeds(plans.map((p) => p.seed));
  const steps = Math.max(...counts.map((c) => c.length));
  // Per sequence: rows the KV set holds, and (delayed) rows that will not be encoded again.
  let encoded = plans.map(() => 0);
  let settled = plans.map(() => 0);
  const confident = o.order === 'confident';
  const oneAtATime = confident || !overlap;
  const settings = { temperature: o.temperature, topP: o.topP, greedy: o.greedy, pReveal: 1, append: !confident };
  const incremental = o.encoder !== 'exact';
  const adaptive = o.encoder === 'adaptive';
  const pass = adaptive ? 'adaptive' : incremental ? 'incremental' : 'exact';

  /** Submit step `step`: its queries, its lengths, its pass; the draws come with `drawn`. */
  const submit = async (step: number) => {
    const reveal = counts.map((c) => c[step] ?? 0);
    // confident: predict every remaining position, keep the most probable ones
    const queries = queue.map((q, b) => (reveal[b] === 0 ? [] : confident ? q : q.slice(0, reveal[b])));
    queries.forEach((q, b) => model.writeQueries(b, q));
    const queryCounts = queries.map((q) => q.length);
    const refresh = incremental && o.refresh > 0 && step % o.refresh === 0;
    const forward = queryCounts.some((m) => m > 0);
    let rows = { encoderRows: plans.map(() => 0), decoderRows: plans.map(() => 0) };
    let drawn: Promise<DrawnTokens> | undefined;
    if (forward) {
      // The KV set holds the rows of the previous pass (none before the first); a refresh
      // re-encodes all; delayed re-encodes the rows that joined for the previous pass too;
      // adaptive, the kept rows the GPU picks (their count comes back with the draws).
      const kept = refresh ? plans.map(() => 0) : o.encoder === 'delayed' ? settled : encoded;
      const fresh = clean.map((n, b) => n - kept[b]);
      model.setLengths(clean, queryCounts, incremental ? fresh : undefined, adaptive);
      drawn = (await model.startStep({ ...settings, step }, pass, adaptive ? o.staleness : undefined)).result;
      rows = { encoderRows: [...model.lastPass.encoderRows], decoderRows: [...model.lastPass.decoderRows] };
      settled = refresh ? [...clean] : encoded;
      encoded = [...clean];
    }
    if (!confident) {
      // Every query is revealed, and the GPU appends it to the clean set: the next step is known.
      queries.forEach((q, b) => {
        queue[b] = queue[b].slice(q.length);
        clean[b] += q.length;
      });
    }
    return { step, reveal, queries, forward, rows, drawn };
  };

  /** Read a submitted step's draws back (confident: keep the most probable) into a BatchStep. */
  const finish = async ({
    step,
    reveal,
    queries,
    forward,
    rows,
    drawn,
  }: Awaited<ReturnType<typeof submit>>): Promise<BatchStep> => {
    const revealed: { position: number; token: number }[][] = plans.map(() => []);
    if (drawn) {
      const out = await drawn;
      out.reencoded?.forEach((r, b) => (rows.encoderRows[b] += r));
      queries.forEach((q, b) => {
        const row = (j: number) => b * out.rowsPerSeq + j;
        q.forEach((position, j) => checkDrawn(out, row(j), config.vocabSize, config.maskId, step, position));
        let picked = q.map((_, j) => j);
        if (confident) {
          picked = picked.sort((x, y) => out.probs[row(y)] - out.probs[row(x)] || q[x] - q[y]).slice(0, reveal[b]);
          model.writeClean(
            b,
            clean[b],
            picked.map((j) => out.tokens[row(j)]),
            picked.map((j) => q[j]),
          );
        }
        for (const j of picked) revealed[b].push({ position: q[j], token: out.tokens[row(j)] });
      });
    }
    revealed.forEach((r, b) => {
      for (const { position, token } of r) tokens[b][position] = token;
      if (confident) {
        const taken = new Set(r.map((x) => x.position));
        queue[b] = queue[b].filter((p) => !taken.has(p));
        clean[b] += r.length;
      }
    });
    return { step, steps, revealed, tokens: tokens.map((t) => t.slice()), forward, ...rows };
  };

  let inFlight: Awaited<ReturnType<typeof submit>> | undefined;
  try {
    for (let step = 0; step < steps; step++) {
      throwIfAborted(signal);
      const submitted = await submit(step);
      if (oneAtATime) yield await finish(submitted);
      else {
        if (inFlight) yield await finish(inFlight);
        inFlight = submitted;
      }
    }
    if (inFlight) yield await finish(inFlight);
  } finally {
    // Stopped early (abort, an error, the caller left): the step in flight ends before we do,
    // so its staging buffer is released when the generation returns, not after.
    await inFlight?.drawn?.catch(() => undefined);
  }
}

/**
 * An MDLM step whose forward pass would be wasted if the step before it revealed nothing is
 * kept in flight only when that is this unlikely: a forward pass costs far more than the
 * round trip of a readback.
 */
const SPECULATE = 1 / 16;

/**
 * MDLM "ddpm_cache": the network runs over all `length` positions; each still-masked
 * position is revealed with probability (alpha_s - alpha_t) / (1 - alpha_t); when no
 * position changed, the next step reuses the logits without a forward pass; a final step
 * reveals whatever is still masked. The sampler writes the drawn tokens on the GPU, so, as the
 * PGM's, step s + 1 may be submitted before step s is read back: with a forward pass, when step
 * s almost surely reveals something (the probability that it reveals nothing, from the masked
 * counts, at most SPECULATE); otherwise after it (`overlap: false`: always after). A forward
 * pass after a step that revealed nothing recomputes the same logits: the tokens are those of
 * one step at a time.
 */
export async function* sampleMdlm(
  model: GpuModel,
  plans: readonly SequencePlan[],
  o: SamplingOptions,
  signal?: AbortSignal,
  { overlap = true } = {},
): AsyncGenerator<BatchStep> {
  const { config } = model;
  const n = o.length;
  const positions = Array.from({ length: n }, (_, i) => i);
  const tokens = plans.map((plan, b) => {
    checkPlan(plan, o, config.bosId, config.vocabSize, b);
    const t = new Int32Array(n).fill(-1);
    for (const [p, id] of plan.known) t[p] = id;
    model.writeClean(
      b,
      0,
      Array.from(t, (id) => (id < 0 ? config.maskId : id)),
      positions,
    );
    return t;
  });
  model.writeSeeds(plans.map((p) => p.seed));
  model.setLengths(
    plans.map(() => n),
    [],
  );
  const steps = o.steps + 1;
  const pReveal = (step: number) => (step < o.steps ? mdlmRevealProbability(step, o.steps) : 1);
  const maskedCounts = () => tokens.map((t) => t.reduce((a, id) => a + (id < 0 ? 1 : 0), 0));

  const submit = async (step: number, forward: boolean) => {
    const settings = {
      temperature: o.temperature,
      topP: o.topP,
      greedy: o.greedy,
      pReveal: pReveal(step),
      append: false,
      step,
    };
    return { step, forward, drawn: (await model.startStep(settings, forward ? 'exact' : 'none')).result };
  };
  /** Read a submitted step back into a BatchStep (`tokens` then hold its reveals). */
  const finish = async ({ step, forward, drawn }: Awaited<ReturnType<typeof submit>>): Promise<BatchStep> => {
    const masked = maskedCounts();
    const out = await drawn;
    const revealed = tokens.map((t, b) => {
      const r: { position: number; token: number }[] = [];
      for (let p = 0; p < n; p++) {
        const token = out.tokens[b * out.rowsPerSeq + p];
        if (t[p] < 0) checkDrawn(out, b * out.rowsPerSeq + p, config.vocabSize, config.maskId, step, p);
        if (t[p] < 0 && token >= 0) {
          t[p] = token;
          r.push({ position: p, token });
        }
      }
      return r;
    });
    return {
      step,
      steps,
      revealed,
      tokens: tokens.map((t) => t.slice()),
      forward,
      encoderRows: forward ? plans.map(() => n) : plans.map(() => 0),
      decoderRows: forward ? masked : plans.map(() => 0),
    };
  };
  /** The probability that a submitted step reveals nothing (tokens: as before it). */
  const revealsNothing = (step: number) => maskedCounts().reduce((q, m) => q * (1 - pReveal(step)) ** m, 1);

  let inFlight: Awaited<ReturnType<typeof submit>> | undefined;
  // Does the next step need a forward pass (the step before it revealed something)?
  let forward = true;
  let allRevealed = false;
  try {
    for (let step = 0; step < steps; step++) {
      throwIfAborted(signal);
      const early =
        inFlight && overlap && revealsNothing(inFlight.step) <= SPECULATE ? await submit(step, true) : undefined;
      if (inFlight) {
        const ev = await finish(inFlight);
        inFlight = early;
        forward = ev.revealed.some((r) => r.length > 0);
        yield ev;
      }
      // A step in flight then draws nothing: it is not a step of the generation.
      allRevealed = maskedCounts().every((m) => m === 0);
      if (allRevealed) break;
      inFlight ??= await submit(step, forward);
      if (!overlap) {
        const ev = await finish(inFlight);
        inFlight = undefined;
        forward = ev.revealed.some((r) => r.length > 0);
        yield ev;
      }
    }
    if (inFlight && !allRevealed) {
      const ev = await finish(inFlight);
      inFlight = undefined;
      yield ev;
    }
  } finally {
    // Stopped early, or every position revealed with a step in flight: it ends before we do.
    await inFlight?.drawn.catch(() => undefined);
  }
}
