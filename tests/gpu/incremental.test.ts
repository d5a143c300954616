import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine.js';
import { PgmError } from '../../src/errors.js';
import type { ModelConfig } from '../../src/weights/config.js';
import { GpuModel } from '../../src/model/gpu-model.js';
import type { PgmSequence } from '../../src/model/inputs.js';
import { adaptivePicks, ReferenceKvSet } from '../../src/reference/incremental.js';
import { REENCODE_PER_FRESH } from '../../src/model/kv-set.js';
import { randomWeights, seededUniform, tinyConfig } from '../../src/reference/random.js';
import type { StepEvent } from '../../src/types.js';
import { compareRows, runtime, testGpu } from '../helpers/gpu.js';

/**
 * A generation-like sequence of passes: pass k adds `joins[k]` clean tokens (the first pass:
 * BOS and a prompt) at positions the previous pass queried, and queries the next `queries[k]`
 * positions; `refresh[k]` re-encodes every clean token; `delayed` encodes the tokens that
 * joined for the previous pass again (as the sampler's delayed policy does).
 */
interface PassPlan {
  joins: number[];
  queries: number[];
  refresh: boolean[];
  delayed?: boolean;
}

/** Random positions after BOS in a random order, and random tokens for them. */
function randomOrder(config: ModelConfig, seed: number): { order: number[]; tokens: number[] } {
  const rand = seededUniform(seed);
  const order = Array.from({ length: config.length - 1 }, (_, i) => i + 1);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  return {
    order: [0, ...order],
    tokens: [config.bosId, ...order.map(() => Math.floor(rand() * (config.vocabSize - 2)))],
  };
}

/** Pass k of each sequence: its whole clean set (rows in join order), its queries, and its fresh rows. */
function passesOf(config: ModelConfig, plans: PassPlan[]): { sequences: PgmSequence[]; fresh: number[] }[] {
  const seqs = plans.map((_, b) => randomOrder(config, 40 + b));
  const encoded = plans.map(() => 0);
  const settled = plans.map(() => 0);
  return plans[0].joins.map((_, k) =>
    plans.reduce(
      (pass, plan, b) => {
        const n = plan.joins.slice(0, k + 1).reduce((a, x) => a + x, 0);
        const { order, tokens } = seqs[b];
        pass.sequences.push({
          tokens: tokens.slice(0, n),
          positions: order.slice(0, n),
          queries: order.slice(n, n + plan.queries[k]),
        });
        pass.fresh.push(n - (plan.refresh[k] ? 0 : plan.delayed ? settled[b] : encoded[b]));
        settled[b] = plan.refresh[k] ? n : encoded[b];
        encoded[b] = n;
        return pass;
      },
      { sequences: [] as PgmSequence[], fresh: [] as number[] },
    ),
  );
}

describe(`the incremental KV set on WebGPU (${runtime}) vs the TypeScript reference`, () => {
  // Odd sizes (D = 36, dh = 12, L = 37), a padded batch whose sequences add different counts,
  // the first pass, stale passes, a refresh mid-way and the last step (L - 1 clean tokens, 1 query).
  const cases: [string, Partial<ModelConfig>][] = [
    [
      'learn+freqs+mean, linear',
      { preQueryMode: 'learn+freqs+mean', hiddenSize: 36, nHeads: 3, vocabSize: 71, length: 37 },
    ],
    [
      'learn+freqs+logsumexp, mlp4, 1 enc / 2 dec',
      {
        preQueryMode: 'learn+freqs+logsumexp',
        queryProcessMode: 'mlp4',
        encoderBlocks: 1,
        decoderBlocks: 2,
        hiddenSize: 30,
        nHeads: 5,
        length: 37,
      },
    ],
  ];
  const incremental: PassPlan[] = [
    { joins: [3, 5, 1, 9, 4, 14], queries: [5, 1, 9, 4, 14, 1], refresh: [false, false, false, true, false, false] },
    { joins: [1, 2, 7, 3, 11, 12], queries: [2, 7, 3, 11, 12, 1], refresh: [false, false, false, true, false, false] },
  ];
  const delayed = incremental.map((p) => ({ ...p, delayed: true }));
  for (const [name, overrides, plans] of [
    ...cases.map(([n, o]) => [n, o, incremental] as const),
    [`${cases[0][0]}, delayed`, cases[0][1], delayed] as const,
  ]) {
    it(name, async () => {
      const gpu = await testGpu();
      const config = tinyConfig('pgm', overrides);
      const weights = randomWeights(config, 7);
      const model = await GpuModel.load(gpu, config, weights, { maxBatch: 2 });
      const sets = plans.map(() => new ReferenceKvSet(config, weights));
      try {
        const passes = passesOf(config, plans);
        expect(passes.at(-1)!.sequences[0].tokens).toHaveLength(config.length - 1);
        const stale: Float32Array[] = [];
        for (const [k, { sequences, fresh }] of passes.entries()) {
          const got = await model.pgmLogits(sequences, { fresh });
          stale.push(got);
          expect(model.kvSetRows).toEqual(sequences.map((s) => s.tokens.length));
          expect(model.lastPass.encoderRows).toEqual(fresh);
          const maxQueries = Math.max(...sequences.map((s) => s.queries.length));
          const want = new Float32Array(got.length);
          sequences.forEach((s, b) => {
            const n = s.tokens.length;
            sets[b].truncate(n - fresh[b]); // a refresh keeps none; delayed drops the rows it encodes again
            const rows = {
              tokens: Array.from(s.tokens).slice(n - fresh[b]),
              positions: Array.from(s.positions).slice(n - fresh[b]),
            };
            want.set(sets[b].step(rows, s.queries), b * maxQueries * config.vocabSize);
          });
          const { maxAbs, argmaxMismatches } = compareRows(got, want, config.vocabSize);
          expect(maxAbs, `pass ${k}`).toBeLessThan(1e-4);
          expect(argmaxMismatches, `pass ${k}`).toBe(0);
        }
        // A pass is exact where every clean row is fresh (the first, a refresh, delayed's
        // second), stale everywhere else.
        for (const [k, { sequences, fresh }] of passes.entries()) {
          const gap = compareRows(stale[k], await model.pgmLogits(sequences), config.vocabSize).maxAbs;
          if (fresh.every((m, b) => m === sequences[b].tokens.length)) expect(gap, `pass ${k}`).toBe(0);
          else expect(gap, `pass ${k}`).toBeGreaterThan(1e-3);
        }
        expect(model.kvSetRows).toEqual([]); // an exact pass overwrites E
      } finally {
        model.dispose();
      }
    });
  }

  it('a pass that reuses rows the KV set does not hold is refused', async () => {
    const gpu = await testGpu();
    const config = tinyConfig('pgm', { length: 20 });
    const model = await GpuModel.load(gpu, config, randomWeights(config, 3), { maxBatch: 1 });
    try {
      const seq = (n: number): PgmSequence => ({
        tokens: Array.from({ length: n }, (_, i) => (i === 0 ? config.bosId : i)),
        positions: Array.from({ length: n }, (_, i) => i),
        queries: [n],
      });
      await expect(model.pgmLogits([seq(4)], { fresh: [2] })).rejects.toMatchObject({
        code: 'shape',
        message: expect.stringContaining('the KV set holds 0'),
      });
      await model.pgmLogits([seq(4)], { fresh: [4] });
      await model.pgmLogits([seq(6)], { fresh: [2] });
      expect(model.kvSetRows).toEqual([6]);
      await expect(model.pgmLogits([seq(9)], { fresh: [2] })).rejects.toMatchObject({
        code: 'shape',
        message: expect.stringContaining('needs 7 cached rows; the KV set holds 6'),
      });
      await expect(model.pgmLogits([seq(6)], { fresh: [7] })).rejects.toMatchObject({ code: 'shape' });
      await model.pgmLogits([seq(6)]);
      expect(model.kvSetRows).toEqual([]); // the exact pass overwrote E
    } finally {
      model.dispose();
    }
  });
});

/**
 * The reference's picks for a pass with `fresh` joined rows, and how far its decisions stand
 * from float rounding: the smallest gap between a share and the threshold, and where the cap
 * cuts, between the last row taken and the first left.
 */
function referencePicks(
  set: ReferenceKvSet,
  threshold: number,
  fresh: number,
): { picks: number[]; margin: number; cut: boolean } {
  const shares = set.unseenShares();
  const picks = adaptivePicks(shares, threshold, fresh);
  const stale = Array.from(shares)
    .filter((u) => u > threshold)
    .sort((a, b) => b - a);
  const cut = stale.length > picks.length;
  const margins = Array.from(shares, (u) => Math.abs(u - threshold));
  if (cut) margins.push(stale[picks.length - 1] - stale[picks.length]);
  return { picks, margin: Math.min(Infinity, ...margins), cut };
}

describe(`the adaptive KV set on WebGPU (${runtime}) vs the TypeScript reference`, () => {
  // Odd sizes, a padded batch whose sequences join different counts, the first pass, passes
  // that re-encode rows and passes the cap cuts, a refresh, the last step (L - 1 clean tokens).
  const cases: [string, Partial<ModelConfig>, number][] = [
    [
      'learn+freqs+mean, linear',
      { preQueryMode: 'learn+freqs+mean', hiddenSize: 36, nHeads: 3, vocabSize: 71, length: 37 },
      0.3,
    ],
    [
      'learn+freqs+logsumexp, mlp4, 1 enc / 2 dec',
      {
        preQueryMode: 'learn+freqs+logsumexp',
        queryProcessMode: 'mlp4',
        encoderBlocks: 1,
        decoderBlocks: 2,
        hiddenSize: 30,
        nHeads: 5,
        length: 37,
      },
      0.2,
    ],
  ];
  const plans: PassPlan[] = [
    {
      joins: [3, 2, 4, 1, 5, 2, 6, 1, 12],
      queries: [2, 4, 1, 5, 2, 6, 1, 12, 1],
      refresh: [false, false, false, false, false, true, false, false, false],
    },
    { joins: [1, 4, 2, 7, 1, 3, 8, 2, 8], queries: [4, 2, 7, 1, 3, 8, 2, 8, 1], refresh: Array(9).fill(false) },
  ];
  for (const [name, overrides, threshold] of cases) {
    it(`${name}, threshold ${threshold}`, async () => {
      const gpu = await testGpu();
      const config = tinyConfig('pgm', overrides);
      const weights = randomWeights(config, 7);
      const model = await GpuModel.load(gpu, config, weights, { maxBatch: 2 });
      const sets = plans.map(() => new ReferenceKvSet(config, weights));
      let reencoded = 0;
      let cut = false;
      try {
        for (const [k, { sequences, fresh }] of passesOf(config, plans).entries()) {
          const want = new Float32Array(
            sequences.length * Math.max(...sequences.map((s) => s.queries.length)) * config.vocabSize,
          );
          const picked = sequences.map((s, b) => {
            const n = s.tokens.length;
            if (fresh[b] === n) sets[b].clear();
            const pick = referencePicks(sets[b], threshold, fresh[b]);
            expect(
              pick.margin,
              `pass ${k}, sequence ${b}: a decision within rounding of the threshold or the cap`,
            ).toBeGreaterThan(1e-4);
            cut ||= pick.cut;
            const rows = {
              tokens: Array.from(s.tokens).slice(n - fresh[b]),
              positions: Array.from(s.positions).slice(n - fresh[b]),
            };
            want.set(sets[b].step(rows, s.queries, pick.picks), b * (want.length / sequences.length));
            return pick.picks.length;
          });
          reencoded += picked.reduce((a, x) => a + x, 0);
          const got = await model.pgmLogits(sequences, { fresh, staleness: threshold });
          expect(model.lastPass.encoderRows, `pass ${k}`).toEqual(fresh.map((m, b) => m + picked[b]));
          expect(picked.every((x, b) => x <= REENCODE_PER_FRESH * fresh[b])).toBe(true);
          const { maxAbs, argmaxMismatches } = compareRows(got, want, config.vocabSize);
          expect(maxAbs, `pass ${k}`).toBeLessThan(1e-4);
          expect(argmaxMismatches, `pass ${k}`).toBe(0);
        }
        expect(reencoded).toBeGreaterThan(10);
        expect(cut).toBe(true);
      } finally {
        model.dispose();
      }
    });
  }
});

describe(`generation with the incremental encoder (${runtime})`, () => {
  // Random weights with the real GPT-2 vocabulary, so prompts are real text.
  const pgmConfig = tinyConfig('pgm', { vocabSize: 50258, hiddenSize: 16, nHeads: 2, condDim: 8, length: 40 });
  const mdlmConfig = tinyConfig('mdlm', {
    vocabSize: 50258,
    hiddenSize: 16,
    nHeads: 2,
    condDim: 8,
    length: 40,
    nBlocks: 2,
  });
  let pgm: Promise<Engine> | undefined;
  const engine = () =>
    (pgm ??= testGpu().then((gpu) =>
      Engine.create(gpu, { config: pgmConfig, weights: randomWeights(pgmConfig, 11) }, { maxBatch: 3 }),
    ));
  const collect = async (run: AsyncIterable<StepEvent>) => {
    const events: StepEvent[] = [];
    for await (const e of run) events.push(e);
    return events;
  };

  it('refresh 1 is the exact encoder, token for token (random, left-to-right and confident orders; incremental, delayed and adaptive)', async () => {
    const e = await engine();
    for (const order of ['random', 'left-to-right', 'confident'] as const) {
      const options = { prompt: 'The cat', length: 37, steps: 9, seed: 3, order };
      const exact = await e.generate(options);
      for (const encoder of ['incremental', 'delayed', 'adaptive'] as const) {
        const refreshed = await e.generate({ ...options, encoder, refresh: 1 });
        expect(Array.from(refreshed.tokens), `${order}, ${encoder}`).toEqual(Array.from(exact.tokens));
        expect(refreshed.stats.encoderRows, order).toBe(exact.stats.encoderRows);
      }
    }
  });

  it('delayed encodes the tokens that joined for this step and, once more, those that joined for the previous one', async () => {
    const e = await engine();
    const known = 1 + e.vocabulary.encode('Once upon a time').length;
    for (const refresh of [undefined, 4]) {
      const events = await collect(
        e.generate({ prompt: 'Once upon a time', length: 40, steps: 11, seed: 8, encoder: 'delayed', refresh }),
      );
      // joined[s]: tokens that joined the clean set for step s (the prompt for step 0).
      const joined = events.map((_, s) => (s === 0 ? known : events[s - 1].revealed.length));
      let clean = 0;
      events.forEach((ev, s) => {
        clean += joined[s];
        const afterRefresh = refresh !== undefined && s > 0 && (s - 1) % refresh === 0;
        const want =
          refresh !== undefined && s % refresh === 0
            ? clean
            : s === 0 || afterRefresh
              ? joined[s]
              : joined[s] + joined[s - 1];
        expect(ev.encoderRows, `step ${s}, refresh ${refresh}`).toBe(want);
      });
    }
  });

  it('each step encodes exactly the tokens that joined since the previous pass; a refresh step, every clean token', async () => {
    const e = await engine();
    const prompt = 'Once upon a time';
    const known = 1 + e.vocabulary.encode(prompt).length;
    for (const refresh of [undefined, 3]) {
      const events = await collect(
        e.generate({ prompt, length: 40, steps: 11, seed: 8, encoder: 'incremental', refresh }),
      );
      let clean = known;
      events.forEach((ev, step) => {
        const joined = step === 0 ? known : events[step - 1].revealed.length;
        expect(ev.encoderRows, `step ${step}, refresh ${refresh}`).toBe(
          refresh !== undefined && step % refresh === 0 ? clean : joined,
        );
        expect(ev.decoderRows).toBe(ev.revealed.length);
        clean += ev.revealed.length;
      });
      const exact = await collect(e.generate({ prompt, length: 40, steps: 11, seed: 8 }));
      let exactClean = known;
      exact.forEach((ev) => {
        expect(ev.encoderRows).toBe(exactClean);
        exactClean += ev.revealed.length;
      });
    }
  });

  it(`adaptive encodes the tokens that joined and stale kept ones, at most ${REENCODE_PER_FRESH} per joined token, the same for a seed each time; staleness 1 never re-encodes`, async () => {
    const e = await engine();
    const known = 1 + e.vocabulary.encode('Once upon a time').length;
    const run = (seed: number, staleness?: number) =>
      collect(e.generate({ prompt: 'Once upon a time', length: 40, steps: 13, seed, encoder: 'adaptive', staleness }));
    let reencoded = 0;
    for (const seed of [8, 9]) {
      const events = await run(seed);
      const again = await run(seed);
      expect(again.map((ev) => [ev.text, ev.encoderRows])).toEqual(events.map((ev) => [ev.text, ev.encoderRows]));
      events.forEach((ev, s) => {
        const joined = s === 0 ? known : events[s - 1].revealed.length;
        expect(ev.encoderRows - joined, `seed ${seed}, step ${s}`).toBeGreaterThanOrEqual(0);
        expect(ev.encoderRows - joined, `seed ${seed}, step ${s}`).toBeLessThanOrEqual(REENCODE_PER_FRESH * joined);
        reencoded += ev.encoderRows - joined;
        expect(ev.decoderRows).toBe(ev.revealed.length);
      });
      if (seed === 8) expect(events[0].encoderRows).toBe(known);
      const never = await run(seed, 1);
      const incremental = await collect(
        e.generate({ prompt: 'Once upon a time', length: 40, steps: 13, seed, encoder: 'incremental' }),
      );
      expect(never.map((ev) => ev.encoderRows)).toEqual(incremental.map((ev) => ev.encoderRows));
    }
    expect(reencoded).toBeGreaterThan(0);
  });

  it('without refresh it is stale: its text differs from the exact one for some seed', async () => {
    const e = await engine();
    let differs = false;
    for (let seed = 0; seed < 6 && !differs; seed++) {
      const options = { length: 40, steps: 13, seed };
      const [a, b] = [await e.generate(options), await e.generate({ ...options, encoder: 'incremental' })];
      differs = a.text !== b.text;
    }
    expect(differs).toBe(true);
  });

  it('a batch equals its sequences run alone (own KV sets, padding, different prompts)', async () => {
    const e = await engine();
    const sequences = [
      { prompt: 'A long time ago in a', seed: 1 },
      { seed: 2 },
      { infill: 'The {{4}} sat on the mat.', seed: 3 },
    ];
    for (const encoder of ['incremental', 'delayed', 'adaptive'] as const) {
      const shared = { length: 36, steps: 7, encoder, refresh: 4 } as const;
      const batch = await e.generateBatch({ ...shared, sequences });
      for (const [b, s] of sequences.entries()) {
        const alone = await e.generate({ ...shared, ...s });
        expect(Array.from(batch.sequences[b].tokens), `sequence ${b}, ${encoder}`).toEqual(Array.from(alone.tokens));
      }
    }
  });

  it('the KV set is allocated once, on first use: GPU memory then stays flat through generations, an abort and exact runs, and dispose() frees it', async () => {
    const gpu = await testGpu();
    const config = pgmConfig;
    const e = await Engine.create(gpu, { config, weights: randomWeights(config, 11) }, { maxBatch: 2 });
    try {
      await e.generate({ length: 30, steps: 5, seed: 1 });
      const exactBytes = e.gpuBytes;
      await e.generate({ length: 30, steps: 5, seed: 1, encoder: 'incremental' });
      // Keys | values for each layer that attends to the clean set, the fresh stream, fresh tokens and positions.
      const { length: L, hiddenSize: D, encoderBlocks, decoderBlocks } = config;
      const kvSet = (encoderBlocks + 1 + decoderBlocks) * 2 * L * 2 * D * 4 + 2 * L * D * 4 + 2 * (2 * L * 4);
      expect(e.gpuBytes - exactBytes).toBeGreaterThanOrEqual(kvSet);
      expect(e.gpuBytes - exactBytes).toBeLessThan(kvSet + 16_384); // and the passes' small uniforms
      // The adaptive pass shares the set and adds the first block's queries and its statistic.
      const incrementalBytes = e.gpuBytes;
      await e.generate({ length: 30, steps: 5, seed: 1, encoder: 'adaptive' });
      const adaptive = 2 * L * D * 4 + 2 * L * 2 * config.nHeads * 4 + 2 * L * 4;
      expect(e.gpuBytes - incrementalBytes).toBeGreaterThanOrEqual(adaptive);
      expect(e.gpuBytes - incrementalBytes).toBeLessThan(adaptive + 16_384);
      const bytes = e.gpuBytes;
      const stop = new AbortController();
      const aborted = e.generate({ length: 40, steps: 20, seed: 2, encoder: 'incremental', signal: stop.signal });
      const iterate = async () => {
        for await (const ev of aborted) if (ev.step === 3) stop.abort();
      };
      await expect(iterate()).rejects.toMatchObject({ code: 'aborted' });
      await expect(aborted).rejects.toMatchObject({ code: 'aborted' });
      for (const seed of [3, 4]) {
        await e.generateBatch({
          length: 40,
          steps: 9,
          encoder: 'incremental',
          refresh: 3,
          sequences: [{ seed }, { seed: seed + 10 }],
        });
        await e.generateBatch({
          length: 40,
          steps: 9,
          encoder: 'adaptive',
          sequences: [{ seed }, { seed: seed + 10 }],
        });
        await e.generate({ length: 40, steps: 9, seed });
      }
      expect(e.gpuBytes).toBe(bytes);
      // After an abort and exact runs in between, the same seed still gives the same text.
      const again = await e.generate({ length: 30, steps: 5, seed: 1, encoder: 'incremental' });
      const first = await e.generate({ length: 30, steps: 5, seed: 1, encoder: 'incremental' });
      expect(again.text).toBe(first.text);
    } finally {
      e.dispose();
    }
    expect(e.gpuBytes).toBe(0);
  });

  it('bad encoder options are typed errors before any GPU work', async () => {
    const e = await engine();
    const reject = (options: object, text: string) =>
      expect(e.generate({ length: 10, ...options })).rejects.toMatchObject({
        code: 'option',
        message: expect.stringContaining(text),
      });
    await reject({ encoder: 'fast' }, 'unknown encoder "fast"');
    await reject({ refresh: 2 }, 'refresh 2 applies to encoder incremental');
    await reject({ encoder: 'incremental', refresh: 0 }, 'refresh must be an integer >= 1');
    await reject({ encoder: 'incremental', refresh: 1.5 }, 'refresh must be an integer >= 1');
    await reject({ staleness: 0.3 }, 'staleness 0.3 applies to encoder adaptive');
    await reject({ encoder: 'incremental', staleness: 0.3 }, 'staleness 0.3 applies to encoder adaptive');
    await reject({ encoder: 'adaptive', staleness: 1.5 }, 'staleness must be a number in [0, 1]');
    await reject({ encoder: 'adaptive', staleness: '0.3' }, 'staleness must be a number in [0, 1]');
    const gpu = await testGpu();
    const mdlm = await Engine.create(
      gpu,
      { config: mdlmConfig, weights: randomWeights(mdlmConfig, 5) },
      { maxBatch: 1 },
    );
    try {
      await expect(mdlm.generate({ length: 10, encoder: 'incremental' })).rejects.toBeInstanceOf(PgmError);
      await expect(mdlm.generate({ length: 10, encoder: 'incremental' })).rejects.toMatchObject({
        code: 'option',
        message: expect.stringContaining('needs a PGM'),
      });
    } finally {
      mdlm.dispose();
    }
  });
});
