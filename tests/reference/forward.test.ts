import { describe, expect, it } from 'vitest';
import { PgmError } from '../../src/errors.js';
import {
  PRE_QUERY_MODES,
  QUERY_PROCESS_MODES,
  validateModelConfig,
  type ModelConfig,
} from '../../src/weights/config.js';
import type { PgmSequence } from '../../src/model/inputs.js';
import {
  groupSwap,
  groupSwapPreQueries,
  pgmEncoder,
  referenceMdlmLogits,
  referencePgmLogits,
} from '../../src/reference/forward.js';
import { modulations, meanRows, sinusoidal } from '../../src/reference/ops.js';
import { randomWeights, seededUniform, tinyConfig } from '../../src/reference/random.js';

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const maxAbs = (a: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]));
  return m;
};

/** A random PGM input: BOS at 0, `n - 1` more clean tokens and `m` queries at distinct positions. */
function randomSequence(config: ModelConfig, n: number, m: number, seed: number): PgmSequence {
  const uniform = seededUniform(seed);
  const order = Array.from({ length: config.length - 1 }, (_, i) => i + 1);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(uniform() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const tokens = [config.bosId, ...Array.from({ length: n - 1 }, () => Math.floor(uniform() * (config.vocabSize - 2)))];
  return { tokens, positions: [0, ...order.slice(0, n - 1)], queries: order.slice(n - 1, n - 1 + m) };
}

const rowsOf = (logits: Float32Array, b: number, rows: number, maxRows: number, V: number): Float32Array =>
  logits.subarray(b * maxRows * V, (b * maxRows + rows) * V);

describe('tinyConfig', () => {
  it('gives valid configs, their derived fields following the overrides', () => {
    for (const arch of ['pgm', 'mdlm'] as const) {
      for (const overrides of [{}, { vocabSize: 300, hiddenSize: 16, nHeads: 2 }]) {
        const config = tinyConfig(arch, overrides);
        expect(validateModelConfig(config, 'tiny')).toBe(config);
        const { vocabSize: V, hiddenSize: D } = config;
        expect(config).toMatchObject({ arch, ...overrides, mlpDim: 4 * D, maskId: V - 1, bosId: V - 2 });
        const blocks = arch === 'pgm' ? [2, 2, 0] : [0, 0, 2];
        expect([config.encoderBlocks, config.decoderBlocks, config.nBlocks]).toEqual(blocks);
      }
    }
  });
});

describe('referencePgmLogits', () => {
  const config = tinyConfig('pgm');
  const weights = randomWeights(config, 42);
  const V = config.vocabSize;

  it('gives a sequence the same logits alone and inside a padded batch', () => {
    const short = randomSequence(config, 3, 2, 1);
    const long = randomSequence(config, 11, 5, 2);
    const alone = referencePgmLogits(config, weights, [short]);
    const batch = referencePgmLogits(config, weights, [long, short]);
    expect(batch.length).toBe(2 * 5 * V);
    expect([...rowsOf(batch, 1, 2, 5, V)]).toEqual([...alone]);
    expect(maxAbs(batch.subarray((5 + 2) * V, 10 * V))).toBe(0); // padded query rows
    expect([...rowsOf(batch, 0, 5, 5, V)]).toEqual([...referencePgmLogits(config, weights, [long])]);
    expect(maxAbs(alone)).toBeGreaterThan(0.1);
  });

  it('predicts each query from the clean tokens and its own position only', () => {
    const s = randomSequence(config, 6, 4, 3);
    const all = referencePgmLogits(config, weights, [s]);
    const q = Array.from(s.queries);
    const single = referencePgmLogits(config, weights, [{ ...s, queries: [q[2]] }]);
    expect(maxAbsDiff(all.subarray(2 * V, 3 * V), single)).toBe(0);
    const reordered = referencePgmLogits(config, weights, [{ ...s, queries: [q[3], q[2], q[2]] }]);
    expect(maxAbsDiff(reordered.subarray(V, 2 * V), single)).toBe(0);
    expect(maxAbsDiff(reordered.subarray(2 * V, 3 * V), single)).toBe(0);
  });

  it('is invariant to permuting the clean tokens together with their positions', () => {
    const s = randomSequence(config, 9, 5, 4);
    const perm = [4, 0, 8, 2, 7, 1, 6, 3, 5];
    const permuted = {
      tokens: perm.map((i) => s.tokens[i]),
      positions: perm.map((i) => s.positions[i]),
      queries: s.queries,
    };
    const a = referencePgmLogits(config, weights, [s]);
    const b = referencePgmLogits(config, weights, [permuted]);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
  });

  it('depends on where the clean tokens are, not only on which they are', () => {
    const s = randomSequence(config, 5, 3, 5);
    const moved = { ...s, positions: [0, ...Array.from(s.positions).slice(1).reverse()] };
    const a = referencePgmLogits(config, weights, [s]);
    expect(maxAbsDiff(a, referencePgmLogits(config, weights, [moved]))).toBeGreaterThan(1e-3);
  });

  it('every pre-query mode and query processor runs and changes the result', () => {
    const s = randomSequence(config, 7, 3, 6);
    const results: Float32Array[] = [];
    for (const preQueryMode of PRE_QUERY_MODES) {
      for (const queryProcessMode of QUERY_PROCESS_MODES) {
        const c = { ...config, preQueryMode, queryProcessMode };
        const logits = referencePgmLogits(c, randomWeights(c, 7), [s]);
        expect(logits.every(Number.isFinite)).toBe(true);
        for (const other of results) expect(maxAbsDiff(logits, other)).toBeGreaterThan(1e-4);
        results.push(logits);
      }
    }
  });

  it("'learn' mode sees positions only through RoPE: shifting every position changes nothing", () => {
    const c = { ...config, preQueryMode: 'learn' as const };
    const w = randomWeights(c, 8);
    const s = { tokens: [c.bosId, 5, 17, 3], positions: [0, 4, 9, 2], queries: [1, 7, 12] };
    const shift = (p: ArrayLike<number>, by: number): number[] => Array.from(p, (x) => x + by);
    const a = referencePgmLogits(c, w, [s]);
    const b = referencePgmLogits(c, w, [
      { tokens: s.tokens, positions: shift(s.positions, 40), queries: shift(s.queries, 40) },
    ]);
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-4);
    // The queries themselves are the same vector before RoPE; only RoPE tells them apart.
    const mods = modulations(w, c);
    const encoderOut = pgmEncoder(c, w, mods, s.tokens, s.positions);
    const q0 = groupSwapPreQueries(c, w, encoderOut, 4, s.queries);
    expect([...q0.subarray(0, c.hiddenSize)]).toEqual([...q0.subarray(2 * c.hiddenSize)]);
    expect(maxAbsDiff(a.subarray(0, V), a.subarray(V, 2 * V))).toBeGreaterThan(1e-3);
    // With absolute sinusoidal codes the same shift does change the logits.
    const f = { ...c, preQueryMode: 'learn+freqs' as const };
    const fa = referencePgmLogits(f, w, [s]);
    const fb = referencePgmLogits(f, w, [
      { tokens: s.tokens, positions: shift(s.positions, 40), queries: shift(s.queries, 40) },
    ]);
    expect(maxAbsDiff(fa, fb)).toBeGreaterThan(1e-3);
  });

  it('builds the pre-queries as base + sinus(pq) + statistic of the valid encoder rows', () => {
    const c = { ...config, preQueryMode: 'learn+freqs+mean' as const };
    const w = randomWeights(c, 9);
    const D = c.hiddenSize;
    const s = randomSequence(c, 6, 3, 10);
    const encoderOut = pgmEncoder(c, w, modulations(w, c), s.tokens, s.positions);
    const q0 = groupSwapPreQueries(c, w, encoderOut, 6, s.queries);
    const base = w.get('decoder.group_swap.base_embedding')!.data;
    const sinus = sinusoidal(s.queries, D);
    const mean = meanRows(encoderOut, 6, D);
    for (let j = 0; j < 3; j++) {
      for (let i = 0; i < D; i++) expect(q0[j * D + i]).toBeCloseTo(base[i] + sinus[j * D + i] + mean[i], 5);
    }
  });

  it('group swap output for a query does not depend on the other queries', () => {
    const w = randomWeights(config, 11);
    const s = randomSequence(config, 5, 4, 12);
    const encoderOut = pgmEncoder(config, w, modulations(w, config), s.tokens, s.positions);
    const all = groupSwap(config, w, encoderOut, s.positions, s.queries);
    const D = config.hiddenSize;
    const one = groupSwap(config, w, encoderOut, s.positions, [s.queries[1]]);
    expect([...all.subarray(D, 2 * D)]).toEqual([...one]);
  });

  it('rejects invalid inputs and the wrong architecture', () => {
    expect(() => referencePgmLogits(config, weights, [{ tokens: [V], positions: [0], queries: [1] }])).toThrow(
      PgmError,
    );
    expect(() =>
      referencePgmLogits(config, weights, [{ tokens: [1], positions: [config.length], queries: [1] }]),
    ).toThrow(PgmError);
    const mdlm = tinyConfig('mdlm');
    expect(() => referencePgmLogits(mdlm, weights, [{ tokens: [1], positions: [0], queries: [1] }])).toThrow(/mdlm/);
    const missing = new Map(weights);
    missing.delete('decoder.layers.1.attn_kv.weight');
    expect(() => referencePgmLogits(config, missing, [{ tokens: [1], positions: [0], queries: [1] }])).toThrow(
      /attn_kv/,
    );
  });

  it('handles a GPT-2-sized vocabulary and a longer model in reasonable time', () => {
    const big = tinyConfig('pgm', { vocabSize: 50258, hiddenSize: 64, length: 128 });
    const w = randomWeights(big, 13);
    const s = randomSequence(big, 64, 16, 14);
    const start = performance.now();
    const logits = referencePgmLogits(big, w, [s]);
    expect(logits.length).toBe(16 * 50258);
    expect(logits.every(Number.isFinite)).toBe(true);
    expect(performance.now() - start).toBeLessThan(20_000);
  });
});

describe('referenceMdlmLogits', () => {
  const config = tinyConfig('mdlm');
  const weights = randomWeights(config, 43);
  const V = config.vocabSize;
  const n = 12;
  const tokens = (seed: number): number[] => {
    const uniform = seededUniform(seed);
    return Array.from({ length: n }, (_, i) =>
      i === 0 ? config.bosId : uniform() < 0.5 ? config.maskId : Math.floor(uniform() * (V - 2)),
    );
  };

  it('computes each sequence of a batch independently', () => {
    const a = tokens(1);
    const b = tokens(2);
    const batch = referenceMdlmLogits(
      config,
      weights,
      [a, b].map((t) => ({ tokens: t })),
    );
    expect(batch.length).toBe(2 * n * V);
    expect([...batch.subarray(n * V)]).toEqual([...referenceMdlmLogits(config, weights, [{ tokens: b }])]);
    expect(maxAbsDiff(batch.subarray(0, n * V), batch.subarray(n * V))).toBeGreaterThan(1e-3);
  });

  it('lets every position see every token (bidirectional)', () => {
    const a = tokens(3);
    const changed = [...a];
    changed[n - 1] = changed[n - 1] === 5 ? 6 : 5;
    const x = referenceMdlmLogits(config, weights, [{ tokens: a }]);
    const y = referenceMdlmLogits(config, weights, [{ tokens: changed }]);
    expect(maxAbsDiff(x.subarray(0, V), y.subarray(0, V))).toBeGreaterThan(1e-5);
  });

  it('rejects ragged batches and the wrong architecture', () => {
    expect(() => referenceMdlmLogits(config, weights, [{ tokens: [1, 2] }, { tokens: [1] }])).toThrow(PgmError);
    expect(() => referenceMdlmLogits(tinyConfig('pgm'), weights, [{ tokens: [1] }])).toThrow(/pgm/);
  });
});
