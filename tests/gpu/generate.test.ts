import { describe, expect, it } from 'vitest';
import { Engine } from '../../src/engine.js';
import type { BatchStepEvent, StepEvent } from '../../src/types.js';
import { PgmError } from '../../src/errors.js';
import type { ModelConfig } from '../../src/weights/config.js';
import type { GpuModel } from '../../src/model/gpu-model.js';
import { Vocabulary } from '../../src/text/vocab.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';
import {
  plainSampling,
  sampleMdlm,
  samplePgm,
  type BatchStep,
  type SamplingOptions,
} from '../../src/sampling/samplers.js';
import { uniformCounts } from '../../src/sampling/schedule.js';
import { runtime, testGpu } from '../helpers/gpu.js';

// Random weights with the real GPT-2 vocabulary, so the text edge (prompts, decode) is real.
const pgmConfig = tinyConfig('pgm', { vocabSize: 50258, hiddenSize: 16, nHeads: 2, condDim: 8, length: 40 });
const mdlmConfig = tinyConfig('mdlm', {
  vocabSize: 50258,
  hiddenSize: 16,
  nHeads: 2,
  condDim: 8,
  length: 40,
  nBlocks: 2,
});

const engines = new Map<string, Promise<Engine>>();
function engine(config: ModelConfig): Promise<Engine> {
  let e = engines.get(config.arch);
  if (!e) {
    e = testGpu().then((gpu) => Engine.create(gpu, { config, weights: randomWeights(config, 11) }, { maxBatch: 3 }));
    engines.set(config.arch, e);
  }
  return e;
}

async function collect<E>(run: AsyncIterable<E>): Promise<E[]> {
  const events: E[] = [];
  for await (const e of run) events.push(e);
  return events;
}

describe(`generation (${runtime})`, () => {
  it('PGM random order: every position < length revealed exactly once, per-step counts follow the schedule', async () => {
    const e = await engine(pgmConfig);
    const events = await collect<StepEvent>(e.generate({ length: 33, steps: 8, seed: 5 }));
    expect(events).toHaveLength(8);
    expect(events.map((ev) => ev.revealed.length)).toEqual(uniformCounts(32, 8));
    const positions = events.flatMap((ev) => ev.revealed.map((r) => r.position)).sort((a, b) => a - b);
    expect(positions).toEqual(Array.from({ length: 32 }, (_, i) => i + 1));
    const last = events.at(-1)!;
    expect(last.tokens[0]).toBe(50256);
    expect([...last.tokens].every((t) => t >= 0 && t < 50257)).toBe(true);
    expect(last.text).not.toContain('▯');
    expect(events[0].text).toContain('▯');
  });

  it('each PGM step runs the encoder over exactly the clean tokens and the decoder over exactly its queries', async () => {
    const e = await engine(pgmConfig);
    const run = e.generate({ length: 40, steps: 13, seed: 9 });
    const events = await collect(run);
    const result = await run;
    const counts = uniformCounts(39, 13);
    let clean = 1;
    let encoder = 0;
    for (const c of counts) {
      encoder += clean;
      clean += c;
    }
    expect(result.stats.forwardPasses).toBe(13);
    expect(result.stats.encoderRows).toBe(encoder);
    expect(result.stats.decoderRows).toBe(39);
    expect(events.map((ev) => ev.revealed.length)).toEqual(counts);
  });

  it('same seed, same tokens; another seed, other tokens', async () => {
    const e = await engine(pgmConfig);
    const a = await e.generate({ length: 30, steps: 6, seed: 123 });
    const b = await e.generate({ length: 30, steps: 6, seed: 123 });
    const c = await e.generate({ length: 30, steps: 6, seed: 124 });
    expect([...a.tokens]).toEqual([...b.tokens]);
    expect([...a.tokens]).not.toEqual([...c.tokens]);
  });

  it('a prompt stays as given and is never re-sampled', async () => {
    const e = await engine(pgmConfig);
    const prompt = 'The quick brown fox';
    const ids = Vocabulary.gpt2().encode(prompt);
    const events = await collect<StepEvent>(e.generate({ prompt, length: 24, steps: 5, seed: 1 }));
    for (const ev of events) {
      expect([...ev.tokens.slice(0, 1 + ids.length)]).toEqual([50256, ...ids]);
      for (const r of ev.revealed) expect(r.position).toBeGreaterThan(ids.length);
    }
    expect(events.at(-1)!.text.startsWith(prompt)).toBe(true); // BOS at position 0 is not part of the text
  });

  it('infill template: known segments stay at their positions, holes and the tail are generated', async () => {
    const e = await engine(pgmConfig);
    const v = Vocabulary.gpt2();
    const a = v.encode('Once upon a time');
    const b = v.encode(' happily ever after.');
    const result = await e.generate({
      infill: `Once upon a time{{6}} happily ever after.`,
      length: 36,
      steps: 4,
      seed: 2,
    });
    expect([...result.tokens.slice(1, 1 + a.length)]).toEqual(a);
    const at = 1 + a.length + 6;
    expect([...result.tokens.slice(at, at + b.length)]).toEqual(b);
    expect([...result.tokens].every((t) => t >= 0)).toBe(true);
  });

  it('infill template: a hole at the end ends the text there, {{5}}{{5}} is 10 tokens, a space before a hole goes with the hole', async () => {
    const e = await engine(pgmConfig);
    const v = Vocabulary.gpt2();
    const the = v.encode('The');
    const sat = v.encode(' sat on the mat.');
    const r = await e.generate({ infill: 'The {{3}} sat on the mat.{{5}}', steps: 4, seed: 3 });
    // No length given: the template's own, BOS + "The" + 3 + " sat on the mat." + 5.
    expect(r.tokens.length).toBe(1 + the.length + 3 + sat.length + 5);
    expect([...r.tokens.slice(1, 1 + the.length)]).toEqual(the);
    expect([...r.tokens.slice(1 + the.length + 3, 1 + the.length + 3 + sat.length)]).toEqual(sat);
    expect([...r.tokens].every((t) => t >= 0)).toBe(true);
    expect(r.text.startsWith('The')).toBe(true);
    expect(r.text).toContain(' sat on the mat.');
    // A longer length than the template generates the positions after it too; a shorter one is an error.
    const longer = await e.generate({ infill: 'The {{3}} sat on the mat.{{5}}', length: 30, steps: 4, seed: 3 });
    expect(longer.tokens.length).toBe(30);
    const shorter = await e.generate({ infill: 'The {{3}} sat on the mat.{{5}}', length: 10 }).catch((x: unknown) => x);
    expect(shorter).toMatchObject({
      code: 'option',
      message: expect.stringMatching(
        /the infill template "The \{\{3\}\} sat on the mat.\{\{5\}\}" .* but length is 10$/,
      ),
    });
    const holes = await e.generate({ infill: '{{5}}{{5}}', steps: 2, seed: 1 });
    expect(holes.tokens.length).toBe(11);
    // Text at the end: the positions after it are generated, up to the model length.
    const open = await e.generate({ infill: 'The {{3}} sat', steps: 4, seed: 1 });
    expect(open.tokens.length).toBe(pgmConfig.length);
    // A batch of templates ending with holes at different places needs a length.
    const mixed = await e
      .generateBatch({ sequences: [{ infill: 'A{{3}}' }, { infill: 'A{{4}}' }] })
      .catch((x: unknown) => x);
    expect(mixed).toMatchObject({
      code: 'option',
      message: expect.stringMatching(/^the infill templates end with holes at different lengths \(\d+, \d+\); /),
    });
  });

  it('MDLM steps are bounded by 4 x the positions to generate', async () => {
    const e = await engine(mdlmConfig);
    const err = await e.generate({ length: 8, steps: 29, seed: 1 }).catch((x: unknown) => x);
    expect(err).toMatchObject({
      code: 'option',
      message: 'steps 29 exceeds 4 x the 7 positions to generate in sequence 0 (28), the most an MDLM takes',
    });
    const r = await e.generate({ length: 8, steps: 28, seed: 1 });
    expect([...r.tokens].every((t) => t >= 0)).toBe(true);
  });

  it('left-to-right reveals blocks in position order; confident reveals the schedule count per step', async () => {
    const e = await engine(pgmConfig);
    const l2r = await collect<StepEvent>(e.generate({ length: 21, steps: 4, order: 'left-to-right', seed: 3 }));
    const firsts = l2r.map((ev) => ev.revealed.map((r) => r.position));
    expect(firsts.flat()).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const confident = await collect<StepEvent>(e.generate({ length: 21, steps: 4, order: 'confident', seed: 3 }));
    expect(confident.map((ev) => ev.revealed.length)).toEqual(uniformCounts(20, 4));
    expect(new Set(confident.flatMap((ev) => ev.revealed.map((r) => r.position))).size).toBe(20);
  });

  it('a batch gives the same tokens as its sequences run one by one with the same seeds', async () => {
    const e = await engine(pgmConfig);
    const sequences = [{ seed: 7 }, { prompt: 'Hello there', seed: 8 }, { infill: 'A{{3}}B', seed: 9 }];
    const batch = await e.generateBatch({ sequences, length: 26, steps: 5 });
    for (const [b, s] of sequences.entries()) {
      const alone = await e.generate({ ...s, length: 26, steps: 5 });
      expect([...batch.sequences[b].tokens]).toEqual([...alone.tokens]);
    }
  });

  it('abort stops within one step and leaves the engine usable', async () => {
    const e = await engine(pgmConfig);
    const controller = new AbortController();
    const run = e.generate({ length: 40, steps: 39, seed: 4, signal: controller.signal });
    let seen = 0;
    await expect(
      (async () => {
        for await (const _ of run) {
          seen++;
          if (seen === 2) controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ code: 'aborted' });
    expect(seen).toBeLessThanOrEqual(3);
    const after = await e.generate({ length: 20, steps: 4, seed: 4 });
    expect([...after.tokens].every((t) => t >= 0)).toBe(true);
  });

  it('invalid options are typed errors before any GPU work', async () => {
    const e = await engine(pgmConfig);
    const bad = [
      { steps: 0 },
      { steps: 100, length: 20 },
      { length: 41 },
      { temperature: 0 },
      { topP: 0 },
      { topP: 1.5 },
      { order: 'sideways' as 'random' },
      { prompt: 'word '.repeat(60), length: 20 },
    ];
    for (const options of bad) {
      const err = await e.generate(options).then(
        () => undefined,
        (x: unknown) => x,
      );
      expect(err).toBeInstanceOf(PgmError);
      expect((err as PgmError).code).toBe('option');
    }
  });

  it('MDLM ddpm_cache: reveals every position once, reuses logits when nothing changed', async () => {
    const e = await engine(mdlmConfig);
    const run = e.generateBatch({ sequences: [{ seed: 1 }, { seed: 2, prompt: 'Hi' }], length: 16, steps: 20 });
    const events = await collect<BatchStepEvent>(run);
    const result = await run;
    for (const [b, seq] of result.sequences.entries()) {
      expect([...seq.tokens].every((t) => t >= 0 && t < 50257)).toBe(true);
      const revealed = events.flatMap((ev) => ev.sequences[b].revealed.map((r) => r.position));
      expect(new Set(revealed).size).toBe(revealed.length);
      expect(revealed.length).toBe(b === 0 ? 15 : 15 - Vocabulary.gpt2().encode('Hi').length);
    }
    // 20 steps for ~15 positions: many steps change nothing, so fewer forward passes than steps
    expect(result.stats.forwardPasses).toBeLessThan(result.stats.steps);
    const again = await e.generateBatch({ sequences: [{ seed: 1 }, { seed: 2, prompt: 'Hi' }], length: 16, steps: 20 });
    expect(again.sequences.map((s) => [...s.tokens])).toEqual(result.sequences.map((s) => [...s.tokens]));
  });
});

/** The events of a generation, each with the number of steps the model had been asked to submit when it arrived. */
async function countingSubmits(
  model: GpuModel,
  steps: AsyncGenerator<BatchStep>,
): Promise<{ ev: BatchStep; submitted: number }[]> {
  let submitted = 0;
  const start = model.startStep.bind(model);
  model.startStep = (...args) => (submitted++, start(...args));
  const events: { ev: BatchStep; submitted: number }[] = [];
  try {
    for await (const ev of steps) events.push({ ev, submitted });
  } finally {
    model.startStep = start;
  }
  return events;
}

describe(`the PGM sampler keeps one step in flight (${runtime})`, () => {
  it('step s + 1 is submitted before step s is read back, and the steps are those of one step at a time', async () => {
    const model = (await engine(pgmConfig)).gpuModel;
    const bos = pgmConfig.bosId;
    const plans = [
      {
        known: new Map([
          [0, bos],
          [3, 464],
        ]),
        seed: 4,
      },
      { known: new Map([[0, bos]]), seed: 5 },
    ];
    const cases: Pick<SamplingOptions, 'order' | 'schedule' | 'encoder'>[] = [
      { order: 'random', schedule: 'uniform', encoder: 'exact' },
      { order: 'left-to-right', schedule: 'non-uniform', encoder: 'exact' },
      { order: 'random', schedule: 'non-uniform', encoder: 'incremental' },
    ];
    for (const c of cases) {
      const o: SamplingOptions = { length: 37, steps: 9, temperature: 1, topP: 1, greedy: false, refresh: 0, ...c };
      const run = (overlap: boolean) => countingSubmits(model, samplePgm(model, plans, o, undefined, { overlap }));
      const overlapped = await run(true);
      const single = await run(false);
      expect(
        overlapped.map((e) => e.ev),
        JSON.stringify(c),
      ).toEqual(single.map((e) => e.ev));
      const forwards = (events: typeof single, upTo: number) =>
        events.slice(0, upTo).filter((e) => e.ev.forward).length;
      // When step s arrives, one at a time has submitted steps 0..s; overlapped, also step s + 1.
      single.forEach((e, s) => expect(e.submitted, `one at a time, step ${s}`).toBe(forwards(single, s + 1)));
      overlapped.forEach((e, s) => expect(e.submitted, `overlapped, step ${s}`).toBe(forwards(single, s + 2)));
    }
  });
});

describe(`the MDLM sampler keeps a step in flight where the step before almost surely reveals something (${runtime})`, () => {
  it('the same steps as one at a time; step s + 1 submitted before step s is read back where it is kept in flight', async () => {
    const model = (await engine(mdlmConfig)).gpuModel;
    const plans = [
      {
        known: new Map([
          [0, mdlmConfig.bosId],
          [5, 464],
        ]),
        seed: 4,
      },
      { known: new Map([[0, mdlmConfig.bosId]]), seed: 5 },
    ];
    for (const steps of [8, 120]) {
      const o = plainSampling(37, steps);
      const run = (overlap: boolean) => countingSubmits(model, sampleMdlm(model, plans, o, undefined, { overlap }));
      const overlapped = await run(true);
      const single = await run(false);
      // A step kept in flight runs its forward pass even if the step before revealed nothing.
      const drawn = (events: typeof single) =>
        events.map(({ ev: { step, revealed, tokens } }) => ({ step, revealed, tokens }));
      expect(drawn(overlapped), `${steps} steps`).toEqual(drawn(single));
      single.forEach((e, s) => expect(e.submitted, `one at a time, step ${s}`).toBe(s + 1));
      overlapped.forEach((e, s) => expect([s + 1, s + 2], `overlapped, step ${s}`).toContain(e.submitted));
      const early = overlapped.filter((e, s) => e.submitted === s + 2).length;
      const extraForwards = overlapped.filter((e) => e.ev.forward).length - single.filter((e) => e.ev.forward).length;
      // 36 positions in 8 steps: each step almost surely reveals some; in 120, most reveal none.
      if (steps === 8) expect(early).toBeGreaterThanOrEqual(6);
      else expect(extraForwards).toBeLessThanOrEqual(early);
      expect(extraForwards).toBeGreaterThanOrEqual(0);
    }
  });
});
