/**
 * The reference forward against fp32 CPU PyTorch on the tiny checkpoints in
 * tests/fixtures/ (see its README), weights read through the converter.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MdlmSequence, PgmSequence } from '../../src/model/inputs.js';
import { loadCheckpoint } from '../../src/convert/read-node.js';
import { referenceMdlmLogits, referencePgmLogits } from '../../src/reference/forward.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const TOLERANCE = 1e-4;

interface Meta {
  arch: 'pgm' | 'mdlm';
  shape: [number, number, number];
}

const fixtures = readdirSync(FIXTURES).filter((name) => existsSync(join(FIXTURES, name, 'model.ckpt')));

const readFloats = (path: string): Float32Array => {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
};

const argmax = (row: Float32Array): number => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);

/** Max abs error over all rows, and the same argmax on every row that has logits (padded rows are zeros). */
function expectLogitsMatch(actual: Float32Array, expected: Float32Array, V: number): void {
  expect(actual.length).toBe(expected.length);
  let maxErr = 0;
  for (let i = 0; i < actual.length; i++) maxErr = Math.max(maxErr, Math.abs(actual[i] - expected[i]));
  expect(maxErr).toBeLessThanOrEqual(TOLERANCE);
  for (let r = 0; r < actual.length / V; r++) {
    const want = expected.subarray(r * V, (r + 1) * V);
    if (want.every((v) => v === 0)) {
      expect(actual.subarray(r * V, (r + 1) * V).every((v) => v === 0)).toBe(true);
      continue;
    }
    expect(argmax(actual.subarray(r * V, (r + 1) * V)), `row ${r}`).toBe(argmax(want));
  }
}

describe('reference forward vs PyTorch fixtures', () => {
  it('finds the fixtures', () => {
    expect(fixtures.length).toBeGreaterThan(0);
  });

  for (const name of fixtures) {
    const dir = join(FIXTURES, name);
    for (const ema of [true, false]) {
      const expectedFile = ema ? 'logits.bin' : 'logits-raw.bin';
      it(`${name}: ${expectedFile} (${ema ? 'EMA' : 'raw'} weights)`, async () => {
        const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
        const input = JSON.parse(readFileSync(join(dir, 'input.json'), 'utf8')) as { sequences: unknown[] };
        const { config, weights } = await loadCheckpoint(join(dir, 'model.ckpt'), { ema });
        expect(config.arch).toBe(meta.arch);
        const logits =
          config.arch === 'pgm'
            ? referencePgmLogits(config, weights, input.sequences as PgmSequence[])
            : referenceMdlmLogits(config, weights, input.sequences as MdlmSequence[]);
        expectLogitsMatch(logits, readFloats(join(dir, expectedFile)), meta.shape[2]);
      });
    }
  }
});
