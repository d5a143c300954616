/**
 * The reference KV set (src/reference/incremental.ts) against fp32 CPU PyTorch on
 * tests/fixtures/pgm-incremental (see its README): stale logits pass by pass, exact ones
 * where a pass re-encodes everything, and really stale ones elsewhere; the adaptive policy's
 * unseen shares, the rows it re-encodes and its logits.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ModelConfig } from '../../src/weights/config.js';
import type { PgmSequence } from '../../src/model/inputs.js';
import type { WeightMap } from '../../src/weights/host-tensor.js';
import { loadCheckpoint } from '../../src/convert/read-node.js';
import { referencePgmLogits } from '../../src/reference/forward.js';
import { REENCODE_PER_FRESH } from '../../src/model/kv-set.js';
import { adaptivePicks, ReferenceKvSet, referenceKvSetLogits } from '../../src/reference/incremental.js';

const DIR = join(import.meta.dirname, '..', 'fixtures', 'pgm-incremental');
/** Reference vs PyTorch, stale and exact logits: measured at most 3.6e-6 (logits up to about 5). */
const TOLERANCE = 1e-5;
/** The first pass and the refresh passes against referencePgmLogits: measured 0. */
const EXACT_TOLERANCE = 1e-5;

/** One pass of input.json: the fresh tokens at their positions (all clean tokens on a refresh). */
interface Pass {
  tokens: number[];
  positions: number[];
  queries: number[];
  refresh: boolean;
}

interface Meta {
  checkpoint: string;
  shape: [number, number];
  rows: number[][];
  adaptive_rows: number[][];
}

/** adaptive.json: passes run with the adaptive policy, and what PyTorch's decided before each. */
interface Adaptive {
  threshold: number;
  sequences: { passes: Pass[]; unseen: number[][]; reencoded: number[][] }[];
}

const readFloats = (path: string): Float32Array => {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

const meta = JSON.parse(readFileSync(join(DIR, 'meta.json'), 'utf8')) as Meta;
const sequences = (JSON.parse(readFileSync(join(DIR, 'input.json'), 'utf8')) as { sequences: { passes: Pass[] }[] })
  .sequences;
const V = meta.shape[1];

const sum = (xs: number[]): number => xs.reduce((a, x) => a + x, 0);

/** The fixture's `[rows, V]` logits of pass `k` of sequence `b` (all passes of sequence 0 first). */
function passRows(all: Float32Array, b: number, k: number, rows = meta.rows): Float32Array {
  const start = sum(rows.slice(0, b).flat()) + sum(rows[b].slice(0, k));
  return all.subarray(start * V, (start + rows[b][k]) * V);
}

/** The clean set after each pass of a sequence, in row order. */
const cleanSets = (passes: readonly Pass[]): PgmSequence[] => {
  let tokens: number[] = [];
  let positions: number[] = [];
  return passes.map((p) => {
    tokens = p.refresh ? [...p.tokens] : [...tokens, ...p.tokens];
    positions = p.refresh ? [...p.positions] : [...positions, ...p.positions];
    return { tokens, positions, queries: p.queries };
  });
};

describe('ReferenceKvSet vs the pgm-incremental fixture', () => {
  let config: ModelConfig;
  let weights: WeightMap;
  /** stale[b][k]: the reference's logits of pass k of sequence b. */
  let stale: Float32Array[][];

  beforeAll(async () => {
    ({ config, weights } = await loadCheckpoint(join(DIR, meta.checkpoint)));
    stale = sequences.map(({ passes }) => {
      const set = new ReferenceKvSet(config, weights);
      const clean = cleanSets(passes);
      return passes.map((p, k) => {
        if (p.refresh) set.clear();
        const logits = set.step(p, p.queries);
        expect(set.size).toBe(clean[k].tokens.length);
        return logits;
      });
    });
  });

  it('matches the PyTorch stale logits of every pass', () => {
    const expected = readFloats(join(DIR, 'logits.bin'));
    expect(expected.length).toBe(meta.shape[0] * V);
    sequences.forEach(({ passes }, b) =>
      passes.forEach((_, k) =>
        expect(maxAbsDiff(stale[b][k], passRows(expected, b, k)), `sequence ${b} pass ${k}`).toBeLessThan(TOLERANCE),
      ),
    );
  });

  it('is the exact forward on the first pass and on a refresh, and stale in between', () => {
    const exactFixture = readFloats(join(DIR, 'logits-exact.bin'));
    let staleness = 0;
    sequences.forEach(({ passes }, b) => {
      const clean = cleanSets(passes);
      passes.forEach((p, k) => {
        const exact = referencePgmLogits(config, weights, [clean[k]]);
        expect(maxAbsDiff(exact, passRows(exactFixture, b, k)), `exact, sequence ${b} pass ${k}`).toBeLessThan(
          TOLERANCE,
        );
        const diff = maxAbsDiff(stale[b][k], exact);
        if (k === 0 || p.refresh) expect(diff, `sequence ${b} pass ${k}`).toBeLessThan(EXACT_TOLERANCE);
        else staleness = Math.max(staleness, diff);
      });
    });
    expect(staleness).toBeGreaterThan(1e-3);
  });

  it('steps a padded batch of sets like the sets one by one', () => {
    const sets = sequences.map(() => new ReferenceKvSet(config, weights));
    const maxQueries = (k: number) => Math.max(...sequences.map(({ passes }) => passes[k].queries.length));
    for (let k = 0; k < 3; k++) {
      const logits = referenceKvSetLogits(
        sets,
        sequences.map(({ passes }) => passes[k]),
      );
      sequences.forEach(({ passes }, b) => {
        const rows = logits.subarray(b * maxQueries(k) * V, (b + 1) * maxQueries(k) * V);
        const m = passes[k].queries.length;
        expect(maxAbsDiff(rows.subarray(0, m * V), stale[b][k])).toBe(0);
        expect(rows.subarray(m * V).every((v) => v === 0)).toBe(true);
      });
    }
  });

  it('the adaptive policy: the unseen shares, the rows it re-encodes and the logits of every pass', () => {
    const adaptive = JSON.parse(readFileSync(join(DIR, 'adaptive.json'), 'utf8')) as Adaptive;
    const expected = readFloats(join(DIR, 'logits-adaptive.bin'));
    let reencoded = 0;
    let cut = false;
    adaptive.sequences.forEach(({ passes, unseen, reencoded: want }, b) => {
      const set = new ReferenceKvSet(config, weights);
      passes.forEach((p, k) => {
        if (p.refresh) set.clear();
        const shares = set.unseenShares();
        expect(shares.length, `sequence ${b} pass ${k}`).toBe(unseen[k].length);
        expect(maxAbsDiff(shares, unseen[k]), `sequence ${b} pass ${k}`).toBeLessThan(1e-5);
        const picks = adaptivePicks(shares, adaptive.threshold, p.tokens.length);
        expect(picks, `sequence ${b} pass ${k}`).toEqual(want[k]);
        reencoded += picks.length;
        cut ||= shares.filter((u) => u > adaptive.threshold).length > REENCODE_PER_FRESH * p.tokens.length;
        expect(
          maxAbsDiff(set.step(p, p.queries, picks), passRows(expected, b, k, meta.adaptive_rows)),
          `sequence ${b} pass ${k}`,
        ).toBeLessThan(TOLERANCE);
        // Every row the pass encoded has now seen the whole set.
        for (const r of [...picks, ...p.tokens.map((_, i) => set.size - p.tokens.length + i)])
          expect(set.unseenShares()[r]).toBe(0);
      });
    });
    expect(reencoded).toBeGreaterThan(5);
    expect(cut).toBe(true);
  });

  it('re-encoding every kept row is the exact pass; re-encoded rows must be distinct kept rows', () => {
    const { passes } = sequences[0];
    const set = new ReferenceKvSet(config, weights);
    set.step(passes[0], passes[0].queries);
    const kept = Array.from({ length: set.size }, (_, r) => r);
    const [, second] = cleanSets(passes);
    const logits = set.step(passes[1], passes[1].queries, kept);
    expect(maxAbsDiff(logits, referencePgmLogits(config, weights, [second]))).toBeLessThan(EXACT_TOLERANCE);
    expect(() => set.step(passes[2], passes[2].queries, [0, 0])).toThrow(/distinct cached rows/);
    expect(() => set.step(passes[2], passes[2].queries, [set.size])).toThrow(/distinct cached rows/);
  });

  it('rejects more rows than the model length', () => {
    const set = new ReferenceKvSet(config, weights);
    const all = Array.from({ length: config.length }, (_, p) => p);
    set.step({ tokens: all.map(() => 1), positions: all }, [0]);
    expect(() => set.step({ tokens: [1], positions: [0] }, [0])).toThrow(/exceed the model length/);
  });
});
