/**
 * The GPU sampler (`shaders/sample.wgsl` through `createSampler`) against its oracle,
 * `samplingDistribution` in `src/reference/sample.ts`.
 *
 * Method: one logits row is replicated over thousands of rows of one sequence, each row with a
 * distinct sequence position, so every row is an independent draw from the same distribution.
 * The counts are compared with the oracle by a chi-square goodness-of-fit test (bins with an
 * expected count under 5 pooled); a test fails when p < 1e-3 (ALPHA). Binomial rates are checked
 * against a two-sided normal bound at the same level (|z| < 3.9). Every seed is fixed, so each
 * run draws the same tokens: a pass is reproducible, not a matter of luck.
 *
 * The regression tests at the end pin two defects found by this file; each
 * says why in its comment.
 */
import { describe, expect, it } from 'vitest';
import { KernelCache } from '../../src/gpu/kernel.js';
import { GpuMemory } from '../../src/gpu/memory.js';
import { gpuTensor } from '../../src/gpu/tensor.js';
import { createSampler, type SampleSettings, type Sampler } from '../../src/kernels/sample.js';
import { createWorkspace, setBatchShape } from '../../src/kernels/workspace.js';
import { seededNormal, seededUniform } from '../../src/reference/random.js';
import { samplingDistribution } from '../../src/reference/sample.js';
import { runAndRead, runtime, testGpu } from '../helpers/gpu.js';

const ALPHA = 1e-3;
const Z_BOUND = 3.9; // two-sided normal tail ~1e-4
const PROB_TOLERANCE = 1e-5;
const SENTINEL = -12345;

// ---------------------------------------------------------------------------------------------
// Statistics: chi-square p-values from the regularized incomplete gamma function.

/** ln Γ(x) for x > 0 (Lanczos, g = 7, nine terms; ~1e-15 relative). */
function logGamma(x: number): number {
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const y = x - 1;
  let sum = c[0];
  for (let i = 1; i < 9; i++) sum += c[i] / (y + i);
  const t = y + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (y + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The regularized upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const front = Math.exp(a * Math.log(x) - x - logGamma(a));
  if (x < a + 1) {
    // Series for P(a, x), which converges fast below the mode.
    let term = 1 / a;
    let sum = term;
    for (let n = 1; n < 1000 && Math.abs(term) > Math.abs(sum) * 1e-16; n++) {
      term *= x / (a + n);
      sum += term;
    }
    return Math.max(0, 1 - front * sum);
  }
  // Continued fraction for Q(a, x) (modified Lentz).
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return front * h;
}

/** P(X >= stat) for X ~ chi-square with `df` degrees of freedom. */
const chiSquarePValue = (stat: number, df: number): number => gammaQ(df / 2, stat / 2);

interface ChiSquare {
  stat: number;
  df: number;
  p: number;
}

/**
 * Goodness of fit of `counts` to `probs` over the tokens with probs > 0. Tokens expected fewer
 * than 5 times are pooled into one bin (merged into the smallest other bin if still under 5).
 */
function chiSquareTest(counts: ArrayLike<number>, probs: Float64Array): ChiSquare {
  let n = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i] > 0) n += counts[i];
  const bins: { observed: number; expected: number }[] = [];
  const pooled = { observed: 0, expected: 0 };
  for (let i = 0; i < probs.length; i++) {
    if (!(probs[i] > 0)) continue;
    const expected = n * probs[i];
    if (expected >= 5) bins.push({ observed: counts[i], expected });
    else {
      pooled.observed += counts[i];
      pooled.expected += expected;
    }
  }
  if (pooled.expected >= 5 || bins.length === 0) bins.push(pooled);
  else if (pooled.expected > 0) {
    const smallest = bins.reduce((a, b) => (b.expected < a.expected ? b : a));
    smallest.observed += pooled.observed;
    smallest.expected += pooled.expected;
  }
  const stat = bins.reduce((s, { observed, expected }) => s + (observed - expected) ** 2 / expected, 0);
  const df = bins.length - 1;
  return { stat, df, p: df > 0 ? chiSquarePValue(stat, df) : 1 };
}

// ---------------------------------------------------------------------------------------------
// Host-side oracles.

/** softmax(logits / T) over every token but the mask, in float64: what the sampler reports. */
function softmaxWithoutMask(logits: Float32Array, temperature: number, maskId: number): Float64Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (i !== maskId) max = Math.max(max, logits[i] / temperature);
  const p = new Float64Array(logits.length);
  let z = 0;
  for (let i = 0; i < logits.length; i++) {
    if (i === maskId) continue;
    p[i] = Math.exp(logits[i] / temperature - max);
    z += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= z;
  return p;
}

/**
 * Smallest distance between `topP` and the mass preceding any token (decreasing probability):
 * when it is far above float32 rounding, the GPU's nucleus and the float64 oracle's agree.
 */
function nucleusMargin(logits: Float32Array, temperature: number, maskId: number, topP: number): number {
  const p = [...softmaxWithoutMask(logits, temperature, maskId)].sort((a, b) => b - a);
  let before = 0;
  let margin = Infinity;
  for (const q of p) {
    margin = Math.min(margin, Math.abs(before - topP));
    before += q;
  }
  return margin;
}

/** Seeded normal logits scaled by `std`, the mask's logit `maskLead` above all the others. */
function spreadLogits(V: number, maskId: number, seed: number, std: number, maskLead: number): Float32Array {
  const normal = seededNormal(seed);
  const logits = Float32Array.from({ length: V }, () => std * normal());
  logits[maskId] = Math.max(...logits) + maskLead;
  return logits;
}

// ---------------------------------------------------------------------------------------------
// Harness: a Workspace like GpuModel.load builds, the sampler's buffers, one submit per step.

interface Shape {
  clean: number[];
  query: number[];
}

/** What one sampler step left in the buffers. */
interface StepResult {
  /** [batch, maxRows] drawn tokens (-1: not revealed; SENTINEL: row not written). */
  tokens: Int32Array;
  /** [batch, maxRows] reported probabilities. */
  probs: Float32Array;
  /** Rows per sequence in `tokens` / `probs`: maxQuery (PGM) or maxClean (MDLM). */
  rowsPerSeq: number;
  cleanTokens: Uint32Array; // [maxBatch, L]
  cleanPositions: Uint32Array; // [maxBatch, L]
}

interface Rig {
  V: number;
  maskId: number;
  L: number;
  /** Replicate one row of V logits over every row, or write [maxBatch, windowRows, V] as given. */
  writeLogits(logits: Float32Array): void;
  writeQueries(b: number, positions: ArrayLike<number>): void;
  writeClean(tokens: Uint32Array, positions?: Uint32Array): void;
  step(arch: 'pgm' | 'mdlm', shape: Shape, seeds: number[], settings: Partial<SampleSettings>): Promise<StepResult>;
}

const defaults: SampleSettings = { step: 0, temperature: 1, topP: 1, greedy: false, pReveal: 1, append: false };

let kernelCache: KernelCache | undefined;

/**
 * A sampler over a logits buffer of `windowRows` rows per sequence (default L): every window
 * samples from the same buffer, so one row of logits replicated over it gives every row those.
 */
async function withRig(
  o: { V: number; maskId: number; L: number; maxBatch: number; windowRows?: number },
  body: (rig: Rig) => Promise<void>,
): Promise<void> {
  const { device } = await testGpu();
  if (kernelCache?.device !== device) kernelCache = new KernelCache(device);
  const memory = new GpuMemory(device);
  const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const { V, maskId, L, maxBatch } = o;
  const R = o.windowRows ?? L;
  const rows = maxBatch * L;
  try {
    const ws = createWorkspace(memory, kernelCache, L, maxBatch);
    const logits = gpuTensor('logits', memory.create('logits', maxBatch * R * V * 4, STORAGE), [maxBatch, R, V]);
    const windows = Math.ceil(L / R);
    const indices = (name: string) => gpuTensor(name, memory.create(name, rows * 4, STORAGE), [maxBatch, L], 'u32');
    const tensors = {
      seeds: gpuTensor('seeds', memory.create('seeds', 4 * maxBatch, STORAGE), [maxBatch], 'u32'),
      queryPositions: indices('queryPositions'),
      cleanTokens: indices('cleanTokens'),
      cleanPositions: indices('cleanPositions'),
      drawn: gpuTensor('drawn', memory.create('drawn', rows * 8, STORAGE), [rows, 2], 'u32'),
    };
    const buffers = Object.fromEntries(Object.entries(tensors).map(([role, t]) => [role, t.buffer])) as Record<
      keyof typeof tensors,
      GPUBuffer
    >;
    const samplers: Record<'pgm' | 'mdlm', Sampler> = {
      pgm: await createSampler(ws, { arch: 'pgm', maskId, logits, windows, ...tensors }),
      mdlm: await createSampler(ws, { arch: 'mdlm', maskId, logits, windows, ...tensors }),
    };
    const rig: Rig = {
      V,
      maskId,
      L,
      writeLogits(values) {
        const data = new Float32Array(maxBatch * R * V);
        if (values.length === V) for (let r = 0; r < maxBatch * R; r++) data.set(values, r * V);
        else data.set(values);
        device.queue.writeBuffer(logits.buffer, 0, data);
      },
      writeQueries(b, positions) {
        device.queue.writeBuffer(buffers.queryPositions, b * L * 4, Uint32Array.from(positions));
      },
      writeClean(tokens, positions) {
        device.queue.writeBuffer(buffers.cleanTokens, 0, Uint32Array.from(tokens));
        device.queue.writeBuffer(
          buffers.cleanPositions,
          0,
          positions ? Uint32Array.from(positions) : new Uint32Array(rows).fill(0xfeed),
        );
      },
      async step(arch, shape, seeds, settings) {
        setBatchShape(ws, shape.clean, shape.query);
        device.queue.writeBuffer(
          buffers.seeds,
          0,
          Uint32Array.from(seeds, (s) => s >>> 0),
        );
        device.queue.writeBuffer(buffers.drawn, 0, new Int32Array(2 * rows).fill(SENTINEL));
        const sampler = samplers[arch];
        sampler.set({ ...defaults, ...settings });
        const outputs = [buffers.drawn, buffers.cleanTokens, buffers.cleanPositions];
        const [drawn, cleanTokens, cleanPositions] = await runAndRead(
          memory,
          'sampler test',
          async () => sampler.windows,
          outputs,
        );
        const rowsPerSeq = arch === 'pgm' ? ws.shape.maxQuery : ws.shape.maxClean;
        const n = shape.clean.length * rowsPerSeq;
        const pairs = new Int32Array(drawn, 0, 2 * n);
        const tokens = new Int32Array(n);
        const probBits = new Int32Array(n);
        for (let i = 0; i < n; i++) {
          tokens[i] = pairs[2 * i];
          probBits[i] = pairs[2 * i + 1];
        }
        return {
          tokens,
          probs: new Float32Array(probBits.buffer),
          rowsPerSeq,
          cleanTokens: new Uint32Array(cleanTokens, 0, rows),
          cleanPositions: new Uint32Array(cleanPositions, 0, rows),
        };
      },
    };
    await body(rig);
  } finally {
    memory.releaseAll();
  }
}

/** Draws of one sequence (`count` rows) at `positions` 0..count-1, one step per entry of `steps`. */
async function drawMany(
  rig: Rig,
  count: number,
  seed: number,
  steps: number[],
  settings: Partial<SampleSettings>,
): Promise<StepResult[]> {
  rig.writeQueries(
    0,
    Array.from({ length: count }, (_, r) => r),
  );
  const results: StepResult[] = [];
  for (const step of steps)
    results.push(await rig.step('pgm', { clean: [0], query: [count] }, [seed], { ...settings, step }));
  return results;
}

type Draws = Pick<StepResult, 'tokens' | 'probs'>;

const countTokens = (V: number, results: Pick<Draws, 'tokens'>[]): Float64Array => {
  const counts = new Float64Array(V);
  for (const { tokens } of results) for (const t of tokens) counts[t]++;
  return counts;
};

/** Every token is a valid id and every probability is softmax(logits / T)[token] within PROB_TOLERANCE. */
function expectValidDraws(
  label: string,
  logits: Float32Array,
  temperature: number,
  maskId: number,
  results: Draws[],
): void {
  const softmax = softmaxWithoutMask(logits, temperature, maskId);
  const wrong: string[] = [];
  for (const { tokens, probs } of results) {
    tokens.forEach((t, i) => {
      if (!(t >= 0 && t < logits.length)) wrong.push(`row ${i}: token ${t}`);
      else if (!(Math.abs(probs[i] - softmax[t]) <= PROB_TOLERANCE))
        wrong.push(`row ${i}: token ${t} prob ${probs[i]}, want ${softmax[t]}`);
    });
  }
  expect(wrong.slice(0, 5), `${label}: ${wrong.length} bad rows`).toEqual([]);
}

/** Tokens drawn though the oracle gives them probability 0, with their counts. */
const outsideSupport = (counts: Float64Array, probs: Float64Array): string[] =>
  [...counts].flatMap((c, t) => (c > 0 && !(probs[t] > 0) ? [`token ${t} x${c}`] : []));

// ---------------------------------------------------------------------------------------------

describe('chi-square p-value helper', () => {
  it('matches closed forms and table critical values', () => {
    for (const x of [0.1, 1, 5, 20]) expect(chiSquarePValue(x, 2)).toBeCloseTo(Math.exp(-x / 2), 12);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 12);
    // Upper 0.001 critical values of the chi-square distribution (3 decimals).
    expect(chiSquarePValue(10.828, 1)).toBeCloseTo(1e-3, 5);
    expect(chiSquarePValue(29.588, 10)).toBeCloseTo(1e-3, 5);
    expect(chiSquarePValue(73.402, 40)).toBeCloseTo(1e-3, 5);
    // Even df = 4 has the closed form e^(-x/2) (1 + x/2); scipy.stats.chi2.sf(40, 40) = 0.470257266839.
    for (const x of [0.5, 3, 12]) expect(chiSquarePValue(x, 4)).toBeCloseTo(Math.exp(-x / 2) * (1 + x / 2), 12);
    expect(chiSquarePValue(40, 40)).toBeCloseTo(0.470257266839, 10);
  });
});

describe(`GPU sampler (${runtime}): distribution`, () => {
  const V = 48;
  const maskId = V - 1;
  const logits = spreadLogits(V, maskId, 2024, 1.3, 4);
  // Fewer rows with a nucleus: its threshold search costs ~8x a plain draw on SwiftShader, and
  // the nucleus has fewer bins to fill.
  const cases = [
    { temperature: 1, topP: 1, rows: 2000 },
    { temperature: 0.7, topP: 1, rows: 2000 },
    { temperature: 1.5, topP: 1, rows: 2000 },
    { temperature: 1, topP: 0.9, rows: 600 },
    { temperature: 1, topP: 0.5, rows: 600 },
  ];

  it(`matches samplingDistribution (chi-square, reject at p < ${ALPHA}) and reports softmax(logits/T)[token]`, async () => {
    await withRig({ V, maskId, L: 2000, maxBatch: 1 }, async (rig) => {
      rig.writeLogits(logits);
      for (const [k, { temperature, topP, rows }] of cases.entries()) {
        const label = `T=${temperature} topP=${topP}`;
        if (topP < 1)
          expect(
            nucleusMargin(logits, temperature, maskId, topP),
            `${label}: nucleus boundary too close to topP`,
          ).toBeGreaterThan(1e-3);
        const results = await drawMany(rig, rows, 1000 + k, [k], { temperature, topP });
        expectValidDraws(label, logits, temperature, maskId, results);
        const probs = samplingDistribution(logits, { temperature, topP, maskId, greedy: false });
        const counts = countTokens(V, results);
        expect(outsideSupport(counts, probs), `${label}: tokens outside the nucleus or the mask`).toEqual([]);
        const fit = chiSquareTest(counts, probs);
        expect(fit.p, `${label}: chi-square ${fit.stat.toFixed(1)} on ${fit.df} df`).toBeGreaterThan(ALPHA);
      }
    });
  });
});

describe(`GPU sampler (${runtime}): nucleus and mask at V = 50258`, () => {
  const V = 50258;
  const maskId = V - 1;
  const rows = 64;
  // A head of 10 tokens holding 0.795 of the mass, spread over the vocabulary (first, last
  // non-mask and strided ids), and a flat tail of 50247 tokens holding 0.205. The nuclei for
  // topP 0.7 and 0.5 end inside the head, where no preceding mass is within 0.02 of topP.
  const headMass = [0.2, 0.14, 0.11, 0.09, 0.07, 0.06, 0.05, 0.04, 0.025, 0.01];
  const headIds = [50256, 0, 31337, 64, 127, 20000, 45001, 1, 9999, 777];
  const logits = new Float32Array(V).fill(Math.log(0.205 / (V - 1 - headIds.length)));
  headIds.forEach((id, i) => (logits[id] = Math.log(headMass[i])));
  logits[maskId] = 30; // by far the largest logit

  it('never draws outside the nucleus, never draws the mask, and fits the nucleus distribution', async () => {
    await withRig({ V, maskId, L: rows, maxBatch: 1 }, async (rig) => {
      rig.writeLogits(logits);
      for (const [k, topP] of [0.7, 0.5].entries()) {
        expect(nucleusMargin(logits, 1, maskId, topP)).toBeGreaterThan(0.01);
        const results = await drawMany(rig, rows, 77 + k, [k], { topP });
        expectValidDraws(`topP=${topP}`, logits, 1, maskId, results);
        const probs = samplingDistribution(logits, { temperature: 1, topP, maskId, greedy: false });
        const counts = countTokens(V, results);
        expect(outsideSupport(counts, probs), `topP=${topP}: tokens outside the nucleus`).toEqual([]);
        const fit = chiSquareTest(counts, probs);
        expect(fit.p, `topP=${topP}: chi-square ${fit.stat.toFixed(1)} on ${fit.df} df`).toBeGreaterThan(ALPHA);
      }
      // Without the filter the tail (0.205 of the mass) shows up: the nuclei above are not vacuous.
      const [full] = await drawMany(rig, rows, 99, [5], { topP: 1 });
      expectValidDraws('topP=1', logits, 1, maskId, [full]);
      const tail = [...full.tokens].filter((t) => !headIds.includes(t));
      expect(tail.length).toBeGreaterThan(0);
      expect(tail).not.toContain(maskId);
    });
  });
});

describe(`GPU sampler (${runtime}): greedy`, () => {
  it('returns the lowest-id argmax (mask excluded) with its softmax probability at T = 1', async () => {
    const V = 130;
    const maskId = 64; // not V - 1: the sampler takes any mask id
    const logits = spreadLogits(V, maskId, 5, 1, 95);
    // Ties across invocations of the 64-wide workgroup (7, 100) and within one (7 + 64 = 71).
    for (const id of [100, 71, 7]) logits[id] = 5;
    const want = samplingDistribution(logits, { temperature: 1, topP: 1, maskId, greedy: true }).indexOf(1);
    expect(want).toBe(7);
    await withRig({ V, maskId, L: 64, maxBatch: 1 }, async (rig) => {
      rig.writeLogits(logits);
      // Temperature and top-p play no part in greedy decoding.
      const results = await drawMany(rig, 64, 3, [0, 1], { greedy: true, temperature: 0.25, topP: 0.1 });
      for (const { tokens } of results) expect(new Set(tokens)).toEqual(new Set([want]));
      expectValidDraws('greedy', logits, 1, maskId, results);
    });
  });
});

describe(`GPU sampler (${runtime}): determinism`, () => {
  const V = 48;
  const maskId = V - 1;
  const count = 512;
  const logits = spreadLogits(V, maskId, 2024, 1.3, 4);
  const collision = [...samplingDistribution(logits, { temperature: 1, topP: 1, maskId, greedy: false })].reduce(
    (s, p) => s + p * p,
    0,
  );
  /** Fraction of equal tokens when `a` and `b` are independent draws, upper bound. */
  const independentBound = collision + Z_BOUND * Math.sqrt((collision * (1 - collision)) / count);
  const agreement = (a: ArrayLike<number>, b: ArrayLike<number>): number =>
    Array.from(a).filter((t, i) => t === b[i]).length / a.length;

  it('depends only on (seed, step, position): not on row, batch slot or run', async () => {
    const S = 0xc0ffee;
    const step = 9;
    await withRig({ V, maskId, L: 600, maxBatch: 2 }, async (rig) => {
      rig.writeLogits(logits);
      const [a] = await drawMany(rig, count, S, [step], {});
      const [again] = await drawMany(rig, count, S, [step], {});
      expect(again.tokens).toEqual(a.tokens);
      expect(again.probs).toEqual(a.probs);

      // Sequence 1 holds the same positions in a shuffled order, with another clean count and
      // batch neighbour; sequence 0 has another seed.
      const u = seededUniform(4);
      const shuffled = Array.from({ length: count }, (_, r) => r);
      for (let i = count - 1; i > 0; i--) {
        const j = Math.floor(u() * (i + 1));
        [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
      }
      rig.writeQueries(
        0,
        Array.from({ length: 300 }, (_, r) => r),
      );
      rig.writeQueries(1, shuffled);
      const b = await rig.step('pgm', { clean: [5, 40], query: [300, count] }, [S + 7, S], { step });
      shuffled.forEach((position, r) =>
        expect(b.tokens[b.rowsPerSeq + r], `position ${position} in row ${r} of slot 1`).toBe(a.tokens[position]),
      );
      expect(agreement(b.tokens.subarray(0, 300), a.tokens.subarray(0, 300)), 'another seed').toBeLessThan(
        independentBound,
      );

      // The same seed in both slots: both reproduce run a.
      rig.writeQueries(
        0,
        Array.from({ length: count }, (_, r) => count - 1 - r),
      );
      rig.writeQueries(
        1,
        Array.from({ length: count }, (_, r) => r),
      );
      const c = await rig.step('pgm', { clean: [0, 0], query: [count, count] }, [S, S], { step });
      for (let r = 0; r < count; r++) {
        expect(c.tokens[r]).toBe(a.tokens[count - 1 - r]);
        expect(c.tokens[count + r]).toBe(a.tokens[r]);
      }

      const [otherStep] = await drawMany(rig, count, S, [step + 1], {});
      expect(agreement(otherStep.tokens, a.tokens), 'another step').toBeLessThan(independentBound);
      const [otherSeed] = await drawMany(rig, count, S + 1, [step], {});
      expect(agreement(otherSeed.tokens, a.tokens), 'another seed').toBeLessThan(independentBound);
      expect(agreement(a.tokens.subarray(1), a.tokens.subarray(0, count - 1)), 'neighbouring positions').toBeLessThan(
        independentBound,
      );
    });
  });
});

describe(`GPU sampler (${runtime}): PGM append`, () => {
  it('writes the drawn tokens and their positions at clean row n_b + r, nothing else', async () => {
    const V = 40;
    const maskId = V - 1;
    const L = 16;
    const shape = { clean: [3, 7], query: [5, 2] };
    const maxQuery = 5;
    // Distinct rows [batch, maxQuery, V]: row (b, r) peaks at its own token, so a row mix-up shows.
    const peak = (b: number, r: number): number => (3 + 11 * b + 5 * r) % maskId;
    const normal = seededNormal(8);
    const logits = Float32Array.from({ length: 2 * maxQuery * V }, () => normal());
    for (let b = 0; b < 2; b++) {
      for (let r = 0; r < maxQuery; r++) {
        logits[(b * maxQuery + r) * V + peak(b, r)] = 6;
        logits[(b * maxQuery + r) * V + maskId] = 50;
      }
    }
    const queries = [
      [9, 4, 15, 0, 11],
      [2, 13],
    ];
    const cleanTokens = Uint32Array.from({ length: 2 * L }, (_, i) => 0xdead00 + i);
    const cleanPositions = Uint32Array.from({ length: 2 * L }, (_, i) => 0xbeef00 + i);
    await withRig({ V, maskId, L, maxBatch: 2, windowRows: maxQuery }, async (rig) => {
      rig.writeLogits(logits);
      queries.forEach((q, b) => rig.writeQueries(b, q));
      for (const settings of [{ greedy: true }, { temperature: 0.8 }]) {
        rig.writeClean(cleanTokens, cleanPositions);
        const out = await rig.step('pgm', shape, [21, 22], { ...settings, append: true, step: 2 });
        const wantTokens = Uint32Array.from(cleanTokens);
        const wantPositions = Uint32Array.from(cleanPositions);
        for (let b = 0; b < 2; b++) {
          for (let r = 0; r < maxQuery; r++) {
            const token = out.tokens[b * maxQuery + r];
            if (r >= shape.query[b]) {
              expect(token, `padding row ${r} of sequence ${b} is not written`).toBe(SENTINEL);
              continue;
            }
            if (settings.greedy) expect(token).toBe(peak(b, r));
            const row = logits.subarray((b * maxQuery + r) * V, (b * maxQuery + r + 1) * V);
            const prob = softmaxWithoutMask(row, settings.temperature ?? 1, maskId)[token];
            expect(Math.abs(out.probs[b * maxQuery + r] - prob), `probability of row (${b}, ${r})`).toBeLessThanOrEqual(
              PROB_TOLERANCE,
            );
            wantTokens[b * L + shape.clean[b] + r] = token;
            wantPositions[b * L + shape.clean[b] + r] = queries[b][r];
          }
        }
        expect(out.cleanTokens).toEqual(wantTokens);
        expect(out.cleanPositions).toEqual(wantPositions);
      }
      rig.writeClean(cleanTokens, cleanPositions);
      const off = await rig.step('pgm', shape, [21, 22], { append: false, step: 2 });
      expect(off.cleanTokens).toEqual(cleanTokens);
      expect(off.cleanPositions).toEqual(cleanPositions);
    });
  });
});

describe(`GPU sampler (${runtime}): windows of rows`, () => {
  it('a logits buffer of a few rows, sampled window by window, draws, appends and reveals what one window over every row does', async () => {
    const V = 50;
    const maskId = V - 1;
    const L = 40;
    const logits = spreadLogits(V, maskId, 77, 1.3, 4);
    const pgmShape = { clean: [3, 9], query: [37, 20] };
    const queries = pgmShape.query.map((m, b) => Array.from({ length: m }, (_, r) => (L - 1 - r - b) % L));
    const clean = Uint32Array.from({ length: 2 * L }, (_, i) => i % (V - 1));
    const masked = Uint32Array.from({ length: 2 * L }, (_, i) => (i % 3 === 0 ? i % (V - 1) : maskId));
    const run = async (windowRows?: number) => {
      const out: StepResult[] = [];
      await withRig({ V, maskId, L, maxBatch: 2, windowRows }, async (rig) => {
        rig.writeLogits(logits);
        queries.forEach((q, b) => rig.writeQueries(b, q));
        rig.writeClean(clean, clean);
        out.push(await rig.step('pgm', pgmShape, [5, 6], { append: true, step: 3 }));
        rig.writeClean(masked);
        out.push(await rig.step('mdlm', { clean: [L, 33], query: [] }, [5, 6], { pReveal: 0.5, step: 3 }));
      });
      return out;
    };
    const whole = await run();
    const [pgm, mdlm] = await run(6);
    expect([pgm, mdlm]).toEqual(whole);
    for (let b = 0; b < 2; b++)
      expect(
        Array.from(pgm.tokens.subarray(b * 37, b * 37 + pgmShape.query[b])).every((t) => t >= 0 && t < maskId),
      ).toBe(true);
    expect(Array.from(mdlm.tokens).filter((t) => t >= 0).length).toBeGreaterThan(10);
  });
});

describe(`GPU sampler (${runtime}): MDLM reveal`, () => {
  const V = 48;
  const maskId = V - 1;
  const L = 1024;
  const shape = { clean: [L, 800], query: [] as number[] };
  const logits = spreadLogits(V, maskId, 2024, 1.3, 4);
  // 70% of the positions masked, the rest known tokens; rows past n_1 hold garbage.
  const u = seededUniform(31);
  const start = Uint32Array.from({ length: 2 * L }, (_, i) => (u() < 0.7 ? maskId : i % (V - 1)));
  start.fill(0xabcdef, L + shape.clean[1]);
  const rowsOf = (b: number): number[] => Array.from({ length: shape.clean[b] }, (_, r) => r);
  const masked = (b: number): number[] => rowsOf(b).filter((r) => start[b * L + r] === maskId);

  it('skips known rows, reveals with probability pReveal, draws from the distribution', async () => {
    await withRig({ V, maskId, L, maxBatch: 2 }, async (rig) => {
      rig.writeLogits(logits);
      const step = 4;
      const run = async (pReveal: number, seeds: number[]): Promise<StepResult> => {
        rig.writeClean(start);
        const out = await rig.step('mdlm', shape, seeds, { pReveal, step });
        // Known rows: drawn = -1 and the token stays; rows past n_b are not touched at all.
        for (let b = 0; b < 2; b++) {
          for (let r = 0; r < L; r++) {
            const i = b * L + r;
            if (r >= shape.clean[b]) expect(out.tokens[i]).toBe(SENTINEL);
            else if (start[i] !== maskId) expect(out.tokens[i]).toBe(-1);
            if (out.tokens[i] < 0) expect(out.cleanTokens[i], `row ${r} of sequence ${b}`).toBe(start[i]);
          }
        }
        return out;
      };

      const none = await run(0, [11, 11]);
      expect(none.cleanTokens).toEqual(start);

      const all = await run(1, [11, 11]);
      for (let b = 0; b < 2; b++) {
        for (const r of masked(b)) {
          const t = all.tokens[b * L + r];
          expect(t >= 0 && t < V && t !== maskId, `masked row ${r} of sequence ${b}: drew ${t}`).toBe(true);
          expect(all.cleanTokens[b * L + r]).toBe(t);
        }
      }
      // Same seed and step: the same position draws the same token in either batch slot.
      for (const r of masked(1)) if (start[r] === maskId) expect(all.tokens[L + r]).toBe(all.tokens[r]);
      const drawn0 = {
        tokens: Int32Array.from(masked(0), (r) => all.tokens[r]),
        probs: Float32Array.from(masked(0), (r) => all.probs[r]),
      };
      expectValidDraws('pReveal=1', logits, 1, maskId, [drawn0]);
      const probs = samplingDistribution(logits, { temperature: 1, topP: 1, maskId, greedy: false });
      const fit = chiSquareTest(countTokens(V, [drawn0]), probs);
      expect(fit.p, `chi-square ${fit.stat.toFixed(1)} on ${fit.df} df`).toBeGreaterThan(ALPHA);

      // The RNG key does not depend on the mode: PGM at positions 0..L-1 draws the same tokens.
      rig.writeQueries(0, rowsOf(0));
      const pgm = await rig.step('pgm', { clean: [0], query: [L] }, [11], { step });
      for (const r of masked(0)) expect(pgm.tokens[r]).toBe(all.tokens[r]);

      const some = await run(0.3, [11, 12]);
      let revealed = 0;
      let total = 0;
      for (let b = 0; b < 2; b++) {
        for (const r of masked(b)) {
          total++;
          const t = some.tokens[b * L + r];
          if (t < 0) continue;
          revealed++;
          expect(some.cleanTokens[b * L + r]).toBe(t);
          if (b === 0) expect(t, 'the reveal coin does not change the token drawn').toBe(all.tokens[r]);
        }
      }
      const z = (revealed - 0.3 * total) / Math.sqrt(total * 0.3 * 0.7);
      expect(Math.abs(z), `${revealed} of ${total} masked rows revealed`).toBeLessThan(Z_BOUND);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Known defects. Each test states the correct behaviour and fails on the current shader.

/** The shader's counter-based RNG (lowbias32), replicated to aim at one key. */
const hash = (x: number): number => {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
};
const inverseMod32 = (c: number): number => {
  let x = c;
  for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(c, x));
  return x;
};
const unhash = (x: number): number => {
  let h = x >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, inverseMod32(0x846ca68b));
  h ^= (h >>> 15) ^ (h >>> 30);
  h = Math.imul(h, inverseMod32(0x7feb352d));
  h ^= h >>> 16;
  return h >>> 0;
};
const GOLDEN = 0x9e3779b9;
const SALT = 0x632be5ab;
const rngBits = (seed: number, step: number, position: number, counter: number): number =>
  hash(hash(hash(hash(seed) ^ step) ^ Math.imul(position, GOLDEN)) ^ hash(counter ^ SALT));
/** The seed whose key (seed, step, position, counter) hashes to `bits`. */
const seedFor = (bits: number, step: number, position: number, counter: number): number =>
  unhash(unhash(unhash(unhash(bits) ^ hash(counter ^ SALT)) ^ Math.imul(position, GOLDEN)) ^ step);

describe(`GPU sampler (${runtime}): regressions`, () => {
  /**
   * uniform01 once computed (f32(h >> 8) + 0.5) / 2^24; for h >> 8 = 2^24 - 1 the f32 sum
   * rounded to 2^24, so u = 1.0, -log(-log(u)) = +inf and that token won the Gumbel-max
   * whatever its probability: about one draw in 334 at V = 50258. Now 23 bits: the largest
   * u is 1 - 2^-24, exact in f32. Aim the largest u at an improbable token.
   */
  it('a token with probability ~1e-17 is not drawn when its uniform is the largest one', async () => {
    const V = 64;
    const maskId = V - 1;
    const victim = 5;
    const step = 2;
    const position = 3;
    const seed = seedFor(0xffffffff, step, position, victim);
    expect(rngBits(seed, step, position, victim) >>> 9).toBe(0x7fffff);
    const logits = new Float32Array(V); // uniform over the other 62 tokens
    logits[victim] = -40;
    await withRig({ V, maskId, L: 64, maxBatch: 1 }, async (rig) => {
      rig.writeLogits(logits);
      // Control: the replicated RNG predicts the GPU's draws on ordinary rows (float64 Gumbel-max),
      // so the aimed key below is the one the shader uses.
      rig.writeQueries(
        0,
        Array.from({ length: 64 }, (_, r) => r),
      );
      const control = await rig.step('pgm', { clean: [0], query: [64] }, [seed], { step });
      for (let r = 0; r < 64; r++) {
        if (r === position) continue;
        let best = -1;
        let bestKey = -Infinity;
        for (let v = 0; v < V; v++) {
          if (v === maskId) continue;
          const u = ((rngBits(seed, step, r, v) >>> 9) + 0.5) / 8388608;
          const key = logits[v] - Math.log(-Math.log(u));
          if (key > bestKey) [best, bestKey] = [v, key];
        }
        expect(control.tokens[r], `replicated RNG vs GPU at position ${r}`).toBe(best);
      }
      expect(
        control.tokens[position],
        `position ${position} drew token ${victim}, probability ${Math.exp(-40) / 62}`,
      ).not.toBe(victim);
    });
  });

  /**
   * A tie at the nucleus boundary is kept whole (a token is kept when the mass of the tokens
   * strictly more probable than it is <= topP), so the nucleus does not depend on token ids.
   * Here the three tied tokens each hold 0.29: all three are kept, not id 3.
   */
  it('top-p keeps a tie at the nucleus boundary whole, on the GPU as in the oracle', async () => {
    const V = 5;
    const maskId = V - 1;
    const logits = Float32Array.from([1, 1, 1, 0, 9]);
    const probs = samplingDistribution(logits, { temperature: 1, topP: 0.5, maskId, greedy: false });
    expect([...probs].map((p) => p > 0)).toEqual([true, true, true, false, false]);
    await withRig({ V, maskId, L: 200, maxBatch: 1 }, async (rig) => {
      rig.writeLogits(logits);
      const results = await drawMany(rig, 200, 6, [0], { topP: 0.5 });
      expect(outsideSupport(countTokens(V, results), probs)).toEqual([]);
    });
  });
});
