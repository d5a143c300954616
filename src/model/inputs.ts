import { fail } from '../errors.js';
import type { ModelConfig } from '../weights/config.js';

/** One PGM sequence: the clean tokens with their sequence positions, and the positions to predict. */
export interface PgmSequence {
  tokens: ArrayLike<number>;
  positions: ArrayLike<number>;
  queries: ArrayLike<number>;
}

/** One MDLM sequence: tokens at positions 0..n-1 (unknown ones are `maskId`). */
export interface MdlmSequence {
  tokens: ArrayLike<number>;
}

/** Batch shape after padding: each sequence keeps its own clean and query counts. */
export interface PgmBatchShape {
  batch: number;
  maxClean: number;
  maxQueries: number;
  cleanLengths: number[];
  queryLengths: number[];
}

const checkTokens = (tokens: ArrayLike<number>, V: number, what: string): void => {
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= V)
      fail('shape', `${what}: token ${t} at index ${i} is outside the vocabulary [0, ${V})`);
  }
};

const checkPositions = (pos: ArrayLike<number>, L: number, what: string): void => {
  for (let i = 0; i < pos.length; i++) {
    const p = pos[i];
    if (!Number.isInteger(p) || p < 0 || p >= L)
      fail('shape', `${what}: position ${p} at index ${i} is outside [0, ${L})`);
  }
};

/** Check a PGM batch against the model and return its padded shape. */
export function validatePgmBatch(config: ModelConfig, sequences: readonly PgmSequence[]): PgmBatchShape {
  if (sequences.length === 0) fail('shape', 'empty batch: pass at least one sequence');
  const L = config.length;
  sequences.forEach((s, b) => {
    const what = `sequence ${b}`;
    if (s.tokens.length === 0) fail('shape', `${what}: needs at least one clean token (BOS at position 0)`);
    if (s.tokens.length !== s.positions.length)
      fail('shape', `${what}: ${s.tokens.length} tokens but ${s.positions.length} positions`);
    if (s.tokens.length > L) fail('shape', `${what}: ${s.tokens.length} clean tokens exceed the model length ${L}`);
    if (s.queries.length > L) fail('shape', `${what}: ${s.queries.length} queries exceed the model length ${L}`);
    checkTokens(s.tokens, config.vocabSize, what);
    checkPositions(s.positions, L, `${what} positions`);
    checkPositions(s.queries, L, `${what} queries`);
  });
  const cleanLengths = sequences.map((s) => s.tokens.length);
  const queryLengths = sequences.map((s) => s.queries.length);
  return {
    batch: sequences.length,
    maxClean: Math.max(...cleanLengths),
    maxQueries: Math.max(...queryLengths),
    cleanLengths,
    queryLengths,
  };
}

/** Check an MDLM batch (all sequences the same length n <= L) and return n. */
export function validateMdlmBatch(config: ModelConfig, sequences: readonly MdlmSequence[]): number {
  if (sequences.length === 0) fail('shape', 'empty batch: pass at least one sequence');
  const n = sequences[0].tokens.length;
  sequences.forEach((s, b) => {
    if (s.tokens.length !== n)
      fail('shape', `sequence ${b}: MDLM batches need equal lengths (${s.tokens.length} vs ${n})`);
    checkTokens(s.tokens, config.vocabSize, `sequence ${b}`);
  });
  if (n === 0 || n > config.length) fail('shape', `MDLM sequence length ${n} must be in [1, ${config.length}]`);
  return n;
}
