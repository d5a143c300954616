/**
 * The incremental ("stale KV set") PGM forward, an opt-in approximation of the exact pass of
 * docs/model.md. Each clean token goes through the encoder in the pass in which it joins the
 * clean set: its rows attend to every row cached before them and to the other rows encoded
 * with them, and what the encoder computed for them is kept. The query side (group swap,
 * decoder layers, output layer, the `+mean` / `+logsumexp` statistic) is the exact one over
 * the cached rows. With an empty set and every clean token fresh, a pass is the exact forward:
 * a "refresh" is `clear()` and then one `step` with every clean token, in the same row order.
 *
 * A pass may also re-encode kept rows in place (the adaptive policy, `adaptivePicks`): they run
 * through every block again against the whole set, replacing their keys and values from the
 * second block on and their encoder output; their first block's keys and values depend only on
 * token and position, so they are exact and kept. Rows never move: a row's keys seen when it
 * was last encoded are rows 0 .. seen - 1, and the share of its first-block attention on the
 * later ones (`unseenShares`) is how stale it is.
 *
 * The cache holds, in the order the rows joined, their tokens and sequence positions, each
 * encoder block's rotary-applied keys and values, the first block's rotary-applied queries, the
 * encoder output `E`, and for each row the set size when it was last encoded. The group swap's
 * and the decoder layers' keys and values are row-wise functions of `E[r]` and `p[r]`, so this
 * reference derives them from the cached rows on every pass (`groupSwap`, `pgmDecoderLayer`):
 * the very numbers a cache of them would hold, as the PyTorch fixture, which does cache them,
 * checks. `referenceKvSetLogits` steps a batch of sets, padded like `referencePgmLogits`.
 */
import { fail } from '../errors.js';
import { headDim, type ModelConfig } from '../weights/config.js';
import { validatePgmBatch, type PgmSequence } from '../model/inputs.js';
import type { WeightMap } from '../weights/host-tensor.js';
import {
  appendRows,
  ditBlockOver,
  embedTokens,
  groupSwap,
  outputLayer,
  pgmDecoderLayer,
  type PlaceRows,
} from './forward.js';
import { REENCODE_PER_FRESH } from '../model/kv-set.js';
import { modulations, type Modulations } from './ops.js';

/** `rows` of `from` ([n, D]) replaced by the rows of `own` ([rows.length, D]), in order. */
function replaceRows(from: Float32Array, own: Float32Array, rows: readonly number[], D: number): Float32Array {
  const out = from.slice();
  rows.forEach((r, i) => out.set(own.subarray(i * D, (i + 1) * D), r * D));
  return out;
}

/** One sequence's encoder state, grown pass by pass. */
export class ReferenceKvSet {
  private readonly mods: Modulations;
  private cleanTokens: number[] = [];
  private cleanPositions: number[] = [];
  /** Per row: the set's size after the pass that last encoded it (it saw rows 0 .. seen - 1). */
  private seen: number[] = [];
  private encoderOut: Float32Array = new Float32Array(0); // [n, D]
  private firstQueries: Float32Array = new Float32Array(0); // the first block's, rotary-applied, [n, D]
  private blockKeys: Float32Array[] = []; // per encoder block, rotary-applied, [n, D]
  private blockValues: Float32Array[] = []; // per encoder block, [n, D]

  constructor(
    readonly config: ModelConfig,
    private readonly weights: WeightMap,
  ) {
    if (config.arch !== 'pgm') fail('architecture', `this is a ${config.arch} model; a KV set needs a pgm model`);
    this.mods = modulations(weights, config);
    this.clear();
  }

  /** Cached rows `n`. */
  get size(): number {
    return this.cleanPositions.length;
  }

  /** Forget every cached row (the next step's fresh tokens then start a new set). */
  clear(): void {
    this.truncate(0);
  }

  /**
   * Forget the rows from `n` on (the rows a delayed policy encodes again join afresh).
   */
  truncate(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.size) fail('shape', `KV set: cannot keep ${n} of ${this.size} rows`);
    const D = this.config.hiddenSize;
    this.cleanTokens = this.cleanTokens.slice(0, n);
    this.cleanPositions = this.cleanPositions.slice(0, n);
    this.seen = this.seen.slice(0, n).map((s) => Math.min(s, n));
    this.encoderOut = this.encoderOut.slice(0, n * D);
    this.firstQueries = this.firstQueries.slice(0, n * D);
    this.blockKeys = this.mods.encoder.map((_, i) => (this.blockKeys[i] ?? new Float32Array(0)).slice(0, n * D));
    this.blockValues = this.mods.encoder.map((_, i) => (this.blockValues[i] ?? new Float32Array(0)).slice(0, n * D));
  }

  /**
   * Per cached row: the share of its first block's attention, averaged over heads, that goes
   * to rows that joined after it was last encoded (0: it has seen the whole set). The first
   * block's queries and keys depend only on token and position, so this is exact.
   */
  unseenShares(): Float64Array {
    const D = this.config.hiddenSize;
    const H = this.config.nHeads;
    const dh = headDim(this.config);
    const n = this.size;
    const keys = this.blockKeys[0];
    const shares = new Float64Array(n);
    const scores = new Float64Array(n);
    for (let r = 0; r < n; r++) {
      for (let h = 0; h < H; h++) {
        let max = -Infinity;
        for (let j = 0; j < n; j++) {
          let dot = 0;
          for (let d = 0; d < dh; d++) dot += this.firstQueries[r * D + h * dh + d] * keys[j * D + h * dh + d];
          scores[j] = dot / Math.sqrt(dh);
          max = Math.max(max, scores[j]);
        }
        let all = 0;
        let unseen = 0;
        for (let j = 0; j < n; j++) {
          const w = Math.exp(scores[j] - max);
          all += w;
          if (j >= this.seen[r]) unseen += w;
        }
        shares[r] += unseen / all / H;
      }
    }
    return shares;
  }

  /**
   * Append `fresh` (`m >= 1` tokens at their sequence positions) as rows `n .. n+m-1`, encode
   * them and re-encode the kept rows `reencode` (distinct, < n) against the whole set, and
   * return the logits `[queries.length, V]` for `queries`.
   */
  step(
    fresh: { tokens: ArrayLike<number>; positions: ArrayLike<number> },
    queries: ArrayLike<number>,
    reencode: readonly number[] = [],
  ): Float32Array {
    const { config, weights, mods } = this;
    const D = config.hiddenSize;
    validatePgmBatch(config, [{ ...fresh, queries }]);
    const m = fresh.tokens.length;
    const kept = this.size;
    if (kept + m > config.length) {
      fail(
        'shape',
        `KV set: ${kept} cached rows and ${m} fresh tokens exceed the model length ${config.length}; clear() the set first`,
      );
    }
    if (
      new Set(reencode).size !== reencode.length ||
      reencode.some((r) => !Number.isInteger(r) || r < 0 || r >= kept)
    ) {
      fail('shape', `KV set: re-encoded rows must be distinct cached rows (< ${kept}), got ${reencode.join(', ')}`);
    }
    this.cleanTokens.push(...Array.from(fresh.tokens));
    this.cleanPositions.push(...Array.from(fresh.positions));
    // The rows this pass encodes: the fresh ones, then the re-encoded ones.
    const tokens = [...Array.from(fresh.tokens), ...reencode.map((r) => this.cleanTokens[r])];
    const positions = [...Array.from(fresh.positions), ...reencode.map((r) => this.cleanPositions[r])];
    const freshRows = (t: Float32Array) => t.subarray(0, m * D);
    const reencoded = (t: Float32Array) => t.subarray(m * D);
    // The first block's keys and values of kept rows are exact: only the fresh rows' join.
    const appendFresh: PlaceRows = (cached, own) => ({
      keys: appendRows(cached.keys, freshRows(own.keys)),
      values: appendRows(cached.values, freshRows(own.values)),
    });
    const replaceAndAppend: PlaceRows = (cached, own) => ({
      keys: appendRows(replaceRows(cached.keys, reencoded(own.keys), reencode, D), freshRows(own.keys)),
      values: appendRows(replaceRows(cached.values, reencoded(own.values), reencode, D), freshRows(own.values)),
    });
    let x = embedTokens(config, weights, tokens);
    mods.encoder.forEach((mod, i) => {
      const cached = { keys: this.blockKeys[i], values: this.blockValues[i] };
      const block = ditBlockOver(
        config,
        weights,
        `encoder.blocks.${i}`,
        mod,
        x,
        positions,
        cached,
        i === 0 ? appendFresh : replaceAndAppend,
      );
      ({ x, keys: this.blockKeys[i], values: this.blockValues[i] } = block);
      if (i === 0) this.firstQueries = appendRows(this.firstQueries, freshRows(block.queries));
    });
    this.encoderOut = appendRows(replaceRows(this.encoderOut, reencoded(x), reencode, D), freshRows(x));
    const n = this.size;
    for (let r = 0; r < m; r++) this.seen.push(n);
    for (const r of reencode) this.seen[r] = n;

    let y = groupSwap(config, weights, this.encoderOut, this.cleanPositions, queries);
    mods.decoder.forEach((mod, i) => {
      y = pgmDecoderLayer(config, weights, i, mod, y, queries, this.encoderOut, this.cleanPositions);
    });
    return outputLayer(config, weights, mods.output, y, queries.length);
  }
}

/**
 * The adaptive policy's choice before a pass with `fresh` fresh rows: the kept rows whose
 * unseen share exceeds `threshold`, stalest first (ties: the lower row), at most
 * REENCODE_PER_FRESH x fresh of them.
 */
export function adaptivePicks(unseen: ArrayLike<number>, threshold: number, fresh: number): number[] {
  const stale = Array.from(unseen, (u, r) => [u, r]).filter(([u]) => u > threshold);
  return stale
    .sort((a, b) => b[0] - a[0] || a[1] - b[1])
    .slice(0, REENCODE_PER_FRESH * fresh)
    .map(([, r]) => r);
}

/**
 * One pass over a batch of KV sets: sequence `b` appends `passes[b].tokens` at
 * `passes[b].positions` to `sets[b]` and queries `passes[b].queries`. -> logits
 * `[batch, maxQueries, V]`, rows past a sequence's own query count are zeros (as
 * `referencePgmLogits`).
 */
export function referenceKvSetLogits(sets: readonly ReferenceKvSet[], passes: readonly PgmSequence[]): Float32Array {
  if (sets.length === 0 || sets.length !== passes.length)
    fail('shape', `${sets.length} KV sets but ${passes.length} passes; give one pass per set`);
  const { batch, maxQueries } = validatePgmBatch(sets[0].config, passes);
  const V = sets[0].config.vocabSize;
  const logits = new Float32Array(batch * maxQueries * V);
  passes.forEach((pass, b) => logits.set(sets[b].step(pass, pass.queries), b * maxQueries * V));
  return logits;
}
