/**
 * The incremental ("stale KV set") PGM forward, an opt-in approximation of the exact pass of
 * docs/model.md. Each clean token goes through the encoder once, in the pass in which it joins
 * the clean set: its rows attend to every row cached before them and to the other tokens
 * joining with them, and what the encoder computed for them is kept and never recomputed.
 * The query side (group swap, decoder layers, output layer, the `+mean` / `+logsumexp`
 * statistic) is the exact one over the cached rows. With an empty set and every clean token
 * fresh, a pass is the exact forward: a "refresh" is `clear()` and then one `step` with every
 * clean token, in the same row order.
 *
 * The cache holds, in the order the rows joined, each encoder block's rotary-applied keys and
 * values, the encoder output `E` and the rows' sequence positions. The group swap's and the
 * decoder layers' keys and values are row-wise functions of `E[r]` and `p[r]`, so this
 * reference derives them from the cached rows on every pass (`groupSwap`, `pgmDecoderLayer`):
 * the very numbers a cache of them would hold, as the PyTorch fixture, which does cache them,
 * checks. `referenceKvSetLogits` steps a batch of sets, padded like `referencePgmLogits`.
 */
import { fail } from '../errors.js';
import type { ModelConfig } from '../model/config.js';
import { validatePgmBatch, type PgmSequence } from '../model/inputs.js';
import type { WeightMap } from '../model/tensor.js';
import { appendRows, ditBlockOver, embedTokens, groupSwap, outputLayer, pgmDecoderLayer } from './forward.js';
import { modulations, type Modulations } from './ops.js';

/** One sequence's stale encoder state, grown pass by pass. */
export class ReferenceKvSet {
  private readonly mods: Modulations;
  private cleanPositions: number[] = [];
  private encoderOut: Float32Array = new Float32Array(0); // [n, D]
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
    this.cleanPositions = [];
    this.encoderOut = new Float32Array(0);
    this.blockKeys = this.mods.encoder.map(() => new Float32Array(0));
    this.blockValues = this.mods.encoder.map(() => new Float32Array(0));
  }

  /**
   * Forget the rows from `n` on (the rows a delayed policy encodes again join afresh).
   */
  truncate(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.size) fail('shape', `KV set: cannot keep ${n} of ${this.size} rows`);
    const D = this.config.hiddenSize;
    this.cleanPositions = this.cleanPositions.slice(0, n);
    this.encoderOut = this.encoderOut.slice(0, n * D);
    this.blockKeys = this.blockKeys.map((k) => k.slice(0, n * D));
    this.blockValues = this.blockValues.map((v) => v.slice(0, n * D));
  }

  /**
   * Append `fresh` (`m >= 1` tokens at their sequence positions) as rows `n .. n+m-1`, encode
   * them against the cached set, and return the logits `[queries.length, V]` for `queries`.
   */
  step(fresh: { tokens: ArrayLike<number>; positions: ArrayLike<number> }, queries: ArrayLike<number>): Float32Array {
    const { config, weights, mods } = this;
    validatePgmBatch(config, [{ ...fresh, queries }]);
    const m = fresh.tokens.length;
    if (this.size + m > config.length) {
      fail('shape', `KV set: ${this.size} cached rows and ${m} fresh tokens exceed the model length ${config.length}; clear() the set first`);
    }
    const keys: Float32Array[] = [];
    const values: Float32Array[] = [];
    let x = embedTokens(config, weights, fresh.tokens);
    mods.encoder.forEach((mod, i) => {
      const cached = { keys: this.blockKeys[i], values: this.blockValues[i] };
      ({ x, keys: keys[i], values: values[i] } = ditBlockOver(config, weights, `encoder.blocks.${i}`, mod, x, fresh.positions, cached));
    });
    this.blockKeys = keys;
    this.blockValues = values;
    this.encoderOut = appendRows(this.encoderOut, x);
    this.cleanPositions.push(...Array.from(fresh.positions));

    let y = groupSwap(config, weights, this.encoderOut, this.cleanPositions, queries);
    mods.decoder.forEach((mod, i) => {
      y = pgmDecoderLayer(config, weights, i, mod, y, queries, this.encoderOut, this.cleanPositions);
    });
    return outputLayer(config, weights, mods.output, y, queries.length);
  }
}

/**
 * One pass over a batch of KV sets: sequence `b` appends `passes[b].tokens` at
 * `passes[b].positions` to `sets[b]` and queries `passes[b].queries`. -> logits
 * `[batch, maxQueries, V]`, rows past a sequence's own query count are zeros (as
 * `referencePgmLogits`).
 */
export function referenceKvSetLogits(sets: readonly ReferenceKvSet[], passes: readonly PgmSequence[]): Float32Array {
  if (sets.length === 0 || sets.length !== passes.length) fail('shape', `${sets.length} KV sets but ${passes.length} passes; give one pass per set`);
  const { batch, maxQueries } = validatePgmBatch(sets[0].config, passes);
  const V = sets[0].config.vocabSize;
  const logits = new Float32Array(batch * maxQueries * V);
  passes.forEach((pass, b) => logits.set(sets[b].step(pass, pass.queries), b * maxQueries * V));
  return logits;
}
