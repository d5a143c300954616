/**
 * The engine under misuse, in Node and in Chromium: invalid options fail before any GPU
 * work, overlapping calls queue in order, a lost device rejects what is pending with
 * `device-lost` (and resolves `engine.lost`), and what is beyond the device's limits is refused naming the limit.
 */
import { describe, expect, it } from 'vitest';
import { expectedParameters } from '../../src/weights/parameters.js';
import { Engine } from '../../src/engine.js';
import { GpuModel } from '../../src/model/gpu-model.js';
import { MAX_CHARS_PER_TOKEN } from '../../src/options.js';
import type { GenerateOptions } from '../../src/types.js';
import { PgmError, brief } from '../../src/errors.js';
import { requestGpu, type GpuContext } from '../../src/gpu/context.js';
import type { ModelConfig } from '../../src/weights/config.js';
import { numel, type WeightMap } from '../../src/weights/host-tensor.js';
import { Vocabulary, gpt2TokenBytes } from '../../src/text/vocab.js';
import { randomWeights, seededUniform, tinyConfig } from '../../src/reference/random.js';
import { runtime, testGpu } from '../helpers/gpu.js';

// A reduced vocabulary keeps the sampler cheap; prompts and text still go through GPT-2.
const vocabulary = Vocabulary.fromCounts(new Uint32Array(50257), 300);
const config = tinyConfig('pgm', {
  vocabSize: 300,
  hiddenSize: 16,
  nHeads: 2,
  condDim: 8,
  length: 24,
  vocabMap: [...vocabulary.vocabMap],
});
const model = { config, weights: randomWeights(config, 5) };

let sharedEngine: Promise<Engine> | undefined;
/** The engine on this worker's shared device (maxBatch 2). */
const shared = (): Promise<Engine> =>
  (sharedEngine ??= testGpu().then((gpu) => Engine.create(gpu, model, { maxBatch: 2 })));

/**
 * A device of its own (the tests that destroy it must not take the shared one down); `limits`
 * 'default': WebGPU's default limits (maxStorageBufferBindingSize 128 MiB, maxBufferSize
 * 256 MiB). Limits cannot be requested below the defaults, so this is the smallest honest
 * device; no wrapper fakes them.
 */
async function ownGpu(limits?: 'default'): Promise<GpuContext> {
  return runtime === 'node' ? (await import('../../src/node.js')).requestNodeGpu({ limits }) : requestGpu({ limits });
}

/** Counts GPU work on `device` (submits, buffers, writes, encoders) until `restore()`. */
function countGpuWork(device: GPUDevice) {
  const counts = { submit: 0, createBuffer: 0, writeBuffer: 0, createCommandEncoder: 0 };
  const wrap = <T extends object>(target: T, name: keyof typeof counts & keyof T) => {
    const original = target[name] as (...args: unknown[]) => unknown;
    Object.defineProperty(target, name, {
      configurable: true,
      value(this: T, ...args: unknown[]) {
        counts[name]++;
        return original.apply(this, args);
      },
    });
    return () => delete (target as Record<string, unknown>)[name as string];
  };
  const undo = [
    wrap(device.queue, 'submit'),
    wrap(device.queue, 'writeBuffer'),
    wrap(device, 'createBuffer'),
    wrap(device, 'createCommandEncoder'),
  ];
  return { counts, restore: () => undo.forEach((u) => u()) };
}

const rejection = (p: PromiseLike<unknown>): Promise<unknown> =>
  Promise.resolve(p).then(
    () => undefined,
    (e: unknown) => e,
  );

describe(`robustness (${runtime})`, () => {
  it('invalid options are typed errors naming the option, before any GPU work', async () => {
    const engine = await shared();
    const device = (await testGpu()).device;
    const bytes = engine.gpuBytes;
    const promptTokens = vocabulary.encode('ab').length;
    const bad: [GenerateOptions & { sequences?: unknown }, RegExp][] = [
      [{ steps: 0 }, /steps must be a positive integer, got 0/],
      [{ steps: -3 }, /steps/],
      [{ steps: 2.5 }, /steps/],
      [{ steps: Number.NaN }, /^steps must be an integer, got NaN$/],
      [{ length: '16' as unknown as number }, /^length must be an integer, got string "16"$/],
      [{ greedy: 'false' as unknown as boolean }, /^greedy must be true or false, got string "false"$/],
      [{ prompt: 123 as unknown as string }, /^prompt must be a string, got 123$/],
      [
        { infill: 5 as unknown as string },
        /^infill must be a template string or an array of \{ position, text \} segments, got 5$/,
      ],
      [{ steps: Infinity }, /steps/],
      [{ steps: 24, length: 24 }, /steps 24 exceeds the 23 positions to generate/],
      [
        { steps: 7 - promptTokens + 1, length: 8, prompt: 'ab' },
        new RegExp(`steps ${8 - promptTokens} exceeds the ${7 - promptTokens} positions`),
      ],
      [{ length: 25 }, /length must be an integer in \[2, 24\]/],
      [{ length: 1 }, /length/],
      [{ length: 12.5 }, /length/],
      [{ length: Number.NaN }, /length/],
      [
        { temperature: 0 },
        /temperature must be in \[1e-6, 1e\+6\], got 0: the sampler scales f32 logits by 1\/T, which can overflow f32 below 1e-6; for the T -> 0 limit use greedy$/,
      ],
      [{ temperature: 1e-40 }, /temperature must be in .*, got 1e-40/],
      [{ temperature: 9e-7 }, /temperature must be in/],
      [{ temperature: 1.1e6 }, /temperature must be in/],
      [{ temperature: -1 }, /temperature/],
      [{ temperature: Number.NaN }, /temperature/],
      [{ temperature: Infinity }, /temperature/],
      [{ temperature: '0.5' as unknown as number }, /temperature/],
      [{ topP: 0 }, /topP must be in \(0, 1\], got 0/],
      [{ topP: -0.5 }, /topP/],
      [{ topP: 1.0001 }, /topP/],
      [{ topP: Number.NaN }, /topP/],
      [
        { prompt: 'word '.repeat(40), length: 20 },
        /^sequence 0: the prompt \(\d+ tokens\) needs positions up to \d+ \(position 0 is BOS\), but length is 20$/,
      ],
      [
        { prompt: 'word '.repeat(40) },
        /^sequence 0: the prompt \(\d+ tokens\) needs positions up to \d+ \(position 0 is BOS\), but the model's length is 24$/,
      ],
      [
        { infill: 'A{{30}}B', length: 20 },
        /^sequence 0: the infill template "A\{\{30\}\}B" \(\d text and 30 hole tokens\) needs positions up to \d+ \(position 0 is BOS\), but length is 20$/,
      ],
      [{ infill: 'A{{30}}B' }, /the infill template "A\{\{30\}\}B" .*but the model's length is 24$/],
      [
        { infill: 'ab{{3}}', length: 4 },
        /the infill template "ab\{\{3\}\}" \(\d text and 3 hole tokens\) needs positions up to 5 \(position 0 is BOS\), but length is 4$/,
      ],
      [
        { infill: 'The {{-3}} sat' },
        /^sequence 0: infill template "The \{\{-3\}\} sat": "\{\{-3\}\}" is not a hole; a hole is \{\{n\}\} with n a whole number of tokens >= 1/,
      ],
      [{ infill: 'The {{0}} sat' }, /"\{\{0\}\}" is not a hole/],
      [{ infill: 'The {{x}} sat' }, /"\{\{x\}\}" is not a hole/],
      [
        { infill: 'The {{3 sat' },
        /^sequence 0: infill template "The \{\{3 sat": "\{\{" at character 5 is never closed; a hole is/,
      ],
      [{ infill: 'The {{3}} sat {{ 2 }}' }, /"\{\{ 2 \}\}" is not a hole/],
      [{ infill: [{ position: 0, text: 'x' }] }, /position must be an integer >= 1/],
      [
        {
          infill: [
            { position: 2, text: 'ab cd' },
            { position: 3, text: 'x' },
          ],
        },
        /^sequence 0: infill segments overlap at position 3$/,
      ],
      [{ placeholder: '_'.repeat(17) }, /^placeholder must be a string of at most 16 characters/],
      [
        { top_p: 0.9 } as GenerateOptions,
        /^unknown option "top_p"; the options are prompt, infill, seed, length, steps, order, schedule, temperature, topP, encoder, refresh, staleness, greedy, signal, placeholder$/,
      ],
      [{ prompt: 'a', infill: 'b' }, /either prompt or infill/],
      [{ order: 'sideways' as 'random' }, /unknown order "sideways"; use one of random, left-to-right, confident/],
      [{ order: 10n as unknown as 'random' }, /unknown order 10;/],
      [{ schedule: 'cosine' as 'uniform' }, /unknown schedule "cosine"/],
      [{ seed: -1 }, /seed must be an integer in \[0, 2\^32\), got -1/],
      [{ seed: 2 ** 32 }, /seed/],
      [{ seed: 1.5 }, /seed/],
      [{ seed: Number.NaN }, /seed/],
    ];
    const work = countGpuWork(device);
    try {
      for (const [options, message] of bad) {
        const e = await rejection(engine.generate(options));
        expect(
          e,
          JSON.stringify(options, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)),
        ).toBeInstanceOf(PgmError);
        expect([(e as PgmError).code, (e as PgmError).message]).toEqual(['option', expect.stringMatching(message)]);
      }
      for (const [sequences, message] of [
        [[], /non-empty array/],
        [[{ seed: 1 }, { seed: 2 }, { seed: 3 }], /batch of 3 exceeds this engine's maxBatch 2/],
      ] as const) {
        const e = await rejection(engine.generateBatch({ sequences: sequences as unknown as { seed: number }[] }));
        expect([(e as PgmError).code, (e as PgmError).message]).toEqual(['option', expect.stringMatching(message)]);
      }
    } finally {
      work.restore();
    }
    expect(work.counts).toEqual({ submit: 0, createBuffer: 0, writeBuffer: 0, createCommandEncoder: 0 });
    expect(engine.gpuBytes).toBe(bytes);
    // The boundaries themselves are valid: greedy needs no temperature, topP = 1, steps = positions.
    const ok = await engine.generate({ length: 6, steps: 5, temperature: 0, greedy: true, topP: 1, seed: 2 ** 32 - 1 });
    expect([...ok.tokens].every((t) => t >= 0)).toBe(true);
    // The smallest temperature samples real tokens (here: the greedy ones); the largest, real tokens.
    const greedy = await engine.generate({ length: 12, steps: 4, greedy: true, seed: 3 });
    const coldest = await engine.generate({ length: 12, steps: 4, temperature: 1e-6, seed: 3 });
    expect([...coldest.tokens]).toEqual([...greedy.tokens]);
    const hottest = await engine.generate({ length: 12, steps: 4, temperature: 1e6, seed: 3 });
    expect([...hottest.tokens].every((t) => t >= 0)).toBe(true);
  });

  it('text far longer than the model is refused before it is tokenized', async () => {
    const engine = await shared();
    const started = performance.now();
    for (const options of [
      { prompt: 'a'.repeat(10_000_000) },
      { infill: `${'b'.repeat(5_000_000)}{{2}}` },
      { infill: [{ position: 1, text: 'c'.repeat(5_000_000) }] },
    ]) {
      const e = await rejection(engine.generate(options));
      expect([(e as PgmError).code, (e as PgmError).message]).toEqual([
        'option',
        expect.stringMatching(
          /^sequence 0: the (prompt|infill text) has \d+ characters, so at least \d+ tokens, more than the model's length 24$/,
        ),
      ]);
    }
    expect(performance.now() - started).toBeLessThan(1000);
    // The bound is the longest GPT-2 token, in bytes.
    expect(Math.max(...gpt2TokenBytes().map((t) => t.length))).toBe(MAX_CHARS_PER_TOKEN);
  });

  it('property: random wrongly typed options are PgmError(option) from then/catch/finally, with no GPU work', async () => {
    const engine = await shared();
    const device = (await testGpu()).device;
    const bytes = engine.gpuBytes;
    const signal = new AbortController().signal;
    // Values of every kind, and which of them each option takes (the option's documented type).
    const pool: unknown[] = [
      0,
      1,
      16,
      -1,
      2.5,
      Number.NaN,
      Infinity,
      2 ** 32,
      '16',
      '0.9',
      'false',
      'random',
      '',
      true,
      false,
      null,
      {},
      [],
      [{ position: 1, text: 'a' }],
      [{ position: '1', text: 'a' }],
      [{ text: 'a' }],
      [5],
      10n,
      Symbol('s'),
      () => 1,
      new Date(0),
      { aborted: 'no' },
      signal,
      '_'.repeat(17),
    ];
    const takes: Record<string, (v: unknown) => boolean> = {
      prompt: (v) => typeof v === 'string',
      infill: (v) =>
        typeof v === 'string' ||
        (Array.isArray(v) &&
          v.every(
            (s) =>
              typeof s === 'object' &&
              s !== null &&
              Number.isInteger(s.position) &&
              s.position >= 1 &&
              typeof s.text === 'string',
          )),
      seed: (v) => Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32,
      length: Number.isInteger,
      steps: Number.isInteger,
      order: (v) => v === 'random' || v === 'left-to-right' || v === 'confident',
      schedule: (v) => v === 'uniform' || v === 'non-uniform',
      temperature: (v) => typeof v === 'number' && !Number.isNaN(v),
      topP: (v) => typeof v === 'number' && !Number.isNaN(v),
      greedy: (v) => typeof v === 'boolean',
      signal: (v) => v === signal,
      placeholder: (v) => typeof v === 'string' && v.length <= 16,
    };
    const names = Object.keys(takes);
    const random = seededUniform(13);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
    const valid: Record<string, unknown> = {
      prompt: 'Hi',
      seed: 4,
      length: 10,
      steps: 3,
      order: 'random',
      schedule: 'uniform',
      temperature: 0.8,
      topP: 0.9,
      greedy: false,
      signal,
      placeholder: '?',
    };
    const work = countGpuWork(device);
    let cases = 0;
    try {
      for (let i = 0; i < 300; i++) {
        // A few valid options around one or two wrongly typed ones (or a misspelt name).
        const options: Record<string, unknown> = {};
        for (const name of names) if (name !== 'infill' && random() < 0.3) options[name] = valid[name];
        const wrong = 1 + Math.floor(random() * 2);
        for (let w = 0; w < wrong; w++) {
          if (random() < 0.1) {
            options[pick(['top_p', 'temp', 'Length', 'tokens'])] = pick(pool);
            continue;
          }
          const name = pick(names);
          const candidates = pool.filter((v) => !takes[name](v));
          options[name] = pick(candidates);
        }
        const batch = random() < 0.3;
        const { prompt, infill, seed, ...shared } = options;
        const run = batch
          ? engine.generateBatch({ ...shared, sequences: [{ seed: 1 }, { prompt, infill, seed }] } as never)
          : engine.generate(options as GenerateOptions);
        const settled: string[] = [];
        const e = await run.catch((x: unknown) => x).finally(() => settled.push('finally'));
        const label = `case ${i}: ${brief(options, 200)}`;
        expect(e, label).toBeInstanceOf(PgmError);
        expect((e as PgmError).code, `${label}: ${(e as Error).message}`).toBe('option');
        expect(settled).toEqual(['finally']);
        cases++;
      }
      // Not an object at all.
      for (const options of [null, 5, 'prompt', [], () => 1, new Map([['steps', 2]]), new Date(0)]) {
        expect(await rejection(engine.generate(options as GenerateOptions))).toMatchObject({
          code: 'option',
          message: expect.stringMatching(/^options must be an object, got /),
        });
        expect(await rejection(engine.generateBatch(options as never))).toMatchObject({ code: 'option' });
      }
      for (const sequences of [undefined, 'a', [null], [5], [{ prompt: 1 }], [{ seed: 1 }, { tokens: [1] }]]) {
        expect(await rejection(engine.generateBatch({ sequences } as never)), brief(sequences)).toMatchObject({
          code: 'option',
        });
      }
    } finally {
      work.restore();
    }
    expect(cases).toBe(300);
    expect(work.counts).toEqual({ submit: 0, createBuffer: 0, writeBuffer: 0, createCommandEncoder: 0 });
    expect(engine.gpuBytes).toBe(bytes);
    expect(Object.prototype.toString.call(engine.generate({ steps: 0 }))).toBe('[object GenerationRun]');
  });

  it('overlapping generate() calls run in call order, each as if alone; failures and aborts do not disturb the queue', async () => {
    const engine = await shared();
    const options = [
      { length: 20, steps: 4, seed: 101 },
      { length: 16, steps: 5, seed: 202, prompt: 'Hello' },
      { length: 24, steps: 3, seed: 303, order: 'left-to-right' as const },
    ];
    const alone = [];
    for (const o of options) alone.push(await engine.generate(o));

    // Each call's step events, logged as its consumer receives them, and completion order.
    const log: string[] = [];
    const finished: string[] = [];
    const track = (name: string, run: AsyncIterable<unknown> & PromiseLike<unknown>): Promise<unknown> =>
      (async () => {
        for await (const _ of run) log.push(name);
        return run;
      })().then(
        (r) => (finished.push(name), r),
        (e: unknown) => (finished.push(name), e),
      );
    const aborted = new AbortController();
    aborted.abort();
    const results = await Promise.all([
      track('0', engine.generate(options[0])),
      track('bad', engine.generate({ steps: 0 })),
      track('1', engine.generate(options[1])),
      track('aborted', engine.generate({ length: 20, steps: 4, seed: 1, signal: aborted.signal })),
      track('2', engine.generate(options[2])),
    ]);
    // The invalid call fails at once (it never joins the queue); the others run one after
    // another in call order: no step of a later call comes before the last step of an earlier
    // one. (The aborted call fails as soon as its turn comes, within the same few microtasks
    // as the previous call's result, so its settling is only ordered after call 0.)
    expect(finished[0]).toBe('bad');
    expect(finished.filter((n) => /^\d$/.test(n))).toEqual(['0', '1', '2']);
    expect(finished.indexOf('aborted')).toBeGreaterThan(finished.indexOf('0'));
    expect(log).toEqual([...Array(4).fill('0'), ...Array(5).fill('1'), ...Array(3).fill('2')]);
    expect(results[1]).toMatchObject({ code: 'option' });
    expect(results[3]).toMatchObject({ code: 'aborted' });
    for (const [i, r] of [results[0], results[2], results[4]].entries()) {
      const run = r as (typeof alone)[number];
      expect([...run.tokens], `call ${i}`).toEqual([...alone[i].tokens]);
      expect(run.text).toBe(alone[i].text);
    }
  });

  /** A 20-step generation with a second call queued behind it; `interrupt` runs once its second step has arrived. */
  async function interruptAtStep2(engine: Engine, interrupt: () => void) {
    const running = engine.generate({ steps: 20, seed: 7 });
    const queued = engine.generate({ steps: 4, seed: 8 });
    let seen = 0;
    const error = await rejection(
      (async () => {
        for await (const _ of running) if (++seen === 2) interrupt();
      })(),
    );
    return { running, queued, seen, error };
  }

  it('a device lost mid-generation rejects the running and the queued calls with device-lost; a new engine on a new device works', async () => {
    const ctx = await ownGpu();
    const engine = await Engine.create(ctx, model, { maxBatch: 1, ownsDevice: true });
    const { running, queued, seen, error: lost } = await interruptAtStep2(engine, () => ctx.device.destroy());
    expect(seen).toBeLessThan(20);
    expect(lost).toBeInstanceOf(PgmError);
    expect([(lost as PgmError).code, (lost as PgmError).message]).toEqual([
      'device-lost',
      expect.stringMatching(/^the GPU device was lost during generation \(.+\); create a new engine$/),
    ]);
    expect(await rejection(running)).toBe(lost);
    expect(await rejection(queued)).toMatchObject({ code: 'device-lost' });
    expect(await rejection(engine.generate({ steps: 2, seed: 1 }))).toMatchObject({
      code: 'device-lost',
      message: expect.stringMatching(/create a new engine$/),
    });
    expect(await engine.lost).toMatchObject({
      code: 'device-lost',
      message: expect.stringMatching(/^the GPU device was lost \(.+\); create a new engine$/),
    });
    engine.dispose();
    expect(engine.gpuBytes).toBe(0);

    // Lost before the first step ran (destroyed right after the call).
    const ctx2 = await ownGpu();
    const engine2 = await Engine.create(ctx2, model, { maxBatch: 1, ownsDevice: true });
    const early = engine2.generate({ steps: 4, seed: 9 });
    ctx2.device.destroy();
    expect(await rejection(early)).toMatchObject({ code: 'device-lost' });
    engine2.dispose();

    // A new engine on a new device: the same tokens as the shared engine for the same seed.
    const ctx3 = await ownGpu();
    const fresh = await Engine.create(ctx3, model, { maxBatch: 1, ownsDevice: true });
    const again = await fresh.generate({ length: 20, steps: 4, seed: 101 });
    const reference = await (await shared()).generate({ length: 20, steps: 4, seed: 101 });
    expect([...again.tokens]).toEqual([...reference.tokens]);
    fresh.dispose();
    // Its device goes with it, but a disposed engine was not lost.
    await ctx3.lost;
    expect(await Promise.race([fresh.lost, new Promise((resolve) => setTimeout(() => resolve('not lost'), 100))])).toBe(
      'not lost',
    );
  });

  it('dispose() during a generation rejects it, and the calls queued behind it, with disposed', async () => {
    for (const own of [false, true]) {
      const ctx = own ? await ownGpu() : await testGpu();
      const engine = await Engine.create(ctx, model, { maxBatch: 1, ownsDevice: own });
      const { queued, seen, error: stopped } = await interruptAtStep2(engine, () => engine.dispose());
      expect(seen, `own device: ${own}`).toBeLessThan(20);
      expect([(stopped as PgmError).code, (stopped as PgmError).message]).toEqual([
        'disposed',
        'the engine was disposed during generation; create a new engine to generate again',
      ]);
      expect(await rejection(queued)).toMatchObject({ code: 'disposed' });
      expect(await rejection(engine.generate({ steps: 2 }))).toMatchObject({
        code: 'disposed',
        message: 'this engine was disposed; create a new one',
      });
      expect(engine.gpuBytes).toBe(0);
    }
    // The shared device still works.
    const after = await (await shared()).generate({ length: 8, steps: 2, seed: 1 });
    expect([...after.tokens].every((t) => t >= 0)).toBe(true);
  });

  it('weights that give NaN or infinite logits are a non-finite error naming the step, not a token id', async () => {
    const gpu = await testGpu();
    for (const [arch, value] of [
      ['pgm', Number.NaN],
      ['pgm', Infinity],
      ['mdlm', Number.NaN],
    ] as const) {
      const c =
        arch === 'pgm'
          ? config
          : tinyConfig('mdlm', {
              vocabSize: 300,
              hiddenSize: 16,
              nHeads: 2,
              condDim: 8,
              length: 24,
              nBlocks: 2,
              vocabMap: [...vocabulary.vocabMap],
            });
      const weights = randomWeights(c, 5);
      const bias = weights.get('output_layer.linear.bias')!;
      weights.set('output_layer.linear.bias', { ...bias, data: bias.data.map((x, i) => (i % 7 === 3 ? value : x)) });
      const engine = await Engine.create(gpu, { config: c, weights }, { maxBatch: 1 });
      const e = await rejection(engine.generate({ length: 10, steps: 3, seed: 1 }));
      expect([(e as PgmError).code, (e as PgmError).message], `${arch} ${value}`).toEqual([
        'non-finite',
        expect.stringMatching(
          /^the model's logits are not finite \(NaN or infinite\) at step 0, position \d+: its weights hold NaN or infinite values/,
        ),
      ]);
      engine.dispose();
    }
  });

  it('GpuModel driven out of its step order (inputs and setLengths, then startStep) is a call-order error, and in order draws again', async () => {
    const m = await GpuModel.load(await testGpu(), config, model.weights);
    const order = (call: () => unknown) => expect(call).toThrow(expect.objectContaining({ code: 'call-order' }));
    const settings = { step: 0, temperature: 1, topP: 1, greedy: true, pReveal: 1, append: true };
    try {
      // Before any setLengths, a step has no batch shape: it would draw nothing.
      expect(await rejection(m.sampleStep(settings))).toMatchObject({
        code: 'call-order',
        message: expect.stringMatching(/a step before setLengths/),
      });
      m.writeClean(0, 0, [config.bosId, 7], [0, 1]);
      m.setLengths([2], [3]);
      // A pass 'none' reuses logits, and none has been computed for these lengths.
      expect(await rejection(m.sampleStep(settings, 'none'))).toMatchObject({
        code: 'call-order',
        message: expect.stringMatching(/pass 'none'/),
      });
      // A failed start leaves the model taking the next step's calls, not stuck.
      expect(await rejection(m.sampleStep(settings, 'adaptive', 2))).toMatchObject({ code: 'shape' });
      m.writeQueries(0, [2, 3, 4]);
      m.writeSeeds([1]);
      // While a step is being started, a write would land in it: refused until it resolves.
      const started = m.startStep(settings);
      order(() => m.writeClean(0, 0, [config.bosId], [0]));
      order(() => m.setLengths([2], [3]));
      expect(await rejection(m.startStep(settings))).toMatchObject({
        code: 'call-order',
        message: expect.stringMatching(/a step is being started/),
      });
      const { tokens } = await (await started).result;
      expect(
        [...tokens].every((t) => t >= 0 && t < config.vocabSize && t !== config.maskId),
        `${tokens}`,
      ).toBe(true);
      // Resolved: the next step's inputs and a pass 'none' over the same lengths are in order.
      m.writeClean(0, 0, [config.bosId, 7], [0, 1]);
      expect((await m.sampleStep({ ...settings, append: false }, 'none')).tokens).toEqual(tokens);
    } finally {
      m.dispose();
    }
  });

  it('what is beyond the device limits is refused naming the limit and what would fit, and every buffer made is freed', async () => {
    await shared(); // kernel variants are measured once per adapter: not on the shapes below
    const gpu = await ownGpu('default');
    expect([gpu.device.limits.maxStorageBufferBindingSize, gpu.device.limits.maxBufferSize]).toEqual([
      2 ** 27,
      2 ** 28,
    ]);
    const live = new Set<GPUBuffer>();
    const createBuffer = gpu.device.createBuffer.bind(gpu.device);
    gpu.device.createBuffer = (descriptor: GPUBufferDescriptor) => {
      const buffer = createBuffer(descriptor);
      const destroy = buffer.destroy.bind(buffer);
      live.add(buffer);
      buffer.destroy = () => (live.delete(buffer), destroy());
      return buffer;
    };
    // A matmul weight over one binding (an MDLM block's mlp.0 [43700, 768] = 134.2 MB in f32)
    // is uploaded in blocks of rows, which only the embedding and the output layer take.
    const zeros = (c: ModelConfig): WeightMap =>
      new Map(
        [...expectedParameters(c)].map(([name, shape]) => [name, { shape, data: new Float32Array(numel(shape)) }]),
      );
    const wideMlp: ModelConfig = {
      ...config,
      arch: 'mdlm',
      nBlocks: 1,
      encoderBlocks: 0,
      decoderBlocks: 0,
      hiddenSize: 768,
      nHeads: 12,
      mlpDim: 43700,
    };
    const e1 = await rejection(Engine.create(gpu, { config: wideMlp, weights: zeros(wideMlp) }));
    expect([(e1 as PgmError).code, (e1 as PgmError).message]).toEqual([
      'webgpu',
      "tensor blocks.0.mlp.0.weight is over this device's maxStorageBufferBindingSize (134217728) and sits in 2 blocks of rows, which the ops reading it do not take",
    ]);
    // Activations sized for [maxBatch, L]: x is [100000, 24, 16] floats = 154 MB.
    const e2 = await rejection(Engine.create(gpu, model, { maxBatch: 100_000 }));
    expect([(e2 as PgmError).code, (e2 as PgmError).message]).toEqual([
      'webgpu',
      'buffer "x" needs 153600000 bytes, over this device\'s maxStorageBufferBindingSize (134217728); use a smaller maxBatch than 100000',
    ]);
    // One sequence of a 3M-row model: x is [1, 3000000, 16] floats = 192 MB.
    const long = { ...config, length: 3_000_000 };
    const e3 = await rejection(Engine.create(gpu, { config: long, weights: model.weights }, { maxBatch: 1 }));
    expect((e3 as PgmError).message).toBe(
      'buffer "x" needs 192000000 bytes, over this device\'s maxStorageBufferBindingSize (134217728); one sequence of the model\'s 3000000 rows does not fit this device',
    );
    // The logits take windows of rows, but not less than one row per sequence.
    const e4 = await rejection(Engine.create(gpu, model, { maxBatch: 200_000 }));
    expect([(e4 as PgmError).code, (e4 as PgmError).message]).toEqual([
      'option',
      "maxBatch 200000: a row of 300 logits for each sequence takes 240000000 bytes, over this device's maxStorageBufferBindingSize (134217728); use a smaller maxBatch",
    ]);
    for (const logitRows of [0, 2.5, 200_000]) {
      const e = await rejection(GpuModel.load(gpu, config, model.weights, { maxBatch: 1, logitRows }));
      expect([(e as PgmError).code, (e as PgmError).message], `logitRows ${logitRows}`).toEqual([
        'option',
        logitRows === 200_000
          ? "logitRows 200000: 200000 rows of 300 logits for 1 sequences take 240000000 bytes, over this device's maxStorageBufferBindingSize (134217728); at most 111848"
          : `logitRows must be a positive integer, got ${logitRows}`,
      ]);
    }
    expect(live.size).toBe(0);
    gpu.device.destroy();
  });
});
