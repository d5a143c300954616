import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { pgm } from '../helpers/cli.js';
import { compareRows } from '../helpers/gpu.js';

// The acceptance path of the engine: `pgm convert` a Lightning checkpoint written by PyTorch,
// then `pgm logits` on WebGPU (Node), against PyTorch's fp32 CPU logits.
const fixtures = join(import.meta.dirname, '..', 'fixtures');
// Fixture folders hold a model.ckpt (tests/fixtures/shipped/ holds the shipped models' fixtures: tests/gpu/shipped.test.ts).
const names = readdirSync(fixtures).filter((n) => existsSync(join(fixtures, n, 'model.ckpt')));
const work = mkdtempSync(join(tmpdir(), 'pgm-logits-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const readFloats = (path: string): Float32Array => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

describe('pgm convert + pgm logits vs PyTorch (Node WebGPU)', () => {
  it('finds the fixtures', () => {
    expect(names.length).toBeGreaterThanOrEqual(8);
  });
  for (const name of names) {
    it(name, async () => {
      const dir = join(fixtures, name);
      const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8'));
      for (const [ema, expected] of [
        [true, 'logits.bin'],
        [false, 'logits-raw.bin'],
      ] as const) {
        const out = join(work, `${name}-${ema ? 'ema' : 'raw'}`);
        const convert = await pgm('convert', join(dir, 'model.ckpt'), out, ...(ema ? [] : ['--no-ema']));
        expect(convert.code).toBe(0);
        const bin = join(out, 'logits.bin');
        const logits = await pgm('logits', '--model', out, '--input', join(dir, 'input.json'), '--out', bin);
        expect(logits.code).toBe(0);
        expect(logits.stdout.trim()).toBe(`[${meta.shape.join(', ')}]`);
        const { maxAbs, argmaxMismatches } = compareRows(
          readFloats(bin),
          readFloats(join(dir, expected)),
          meta.shape[2],
        );
        expect(maxAbs).toBeLessThanOrEqual(1e-4);
        expect(argmaxMismatches).toBe(0);
      }
    });
  }
});

describe('pgm logits errors', () => {
  it('bad input JSON and wrong field types are one-line typed errors with exit 1', async () => {
    const model = join(work, 'pgm-learn-mlp4-ema');
    await pgm('convert', join(fixtures, 'pgm-learn-mlp4', 'model.ckpt'), model);
    const input = join(work, 'bad.json');
    for (const [content, message] of [
      ['{"sequences": [', 'not valid JSON'],
      ['{"sequences": [{"tokens": [59]}]}', 'sequences[0].positions must be an array of integers'],
      ['{"sequences": [{"tokens": [59], "positions": [0], "queries": [99]}]}', 'outside [0, 29)'],
      ['{"sequences": [{"tokens": [600], "positions": [0], "queries": [1]}]}', 'outside the vocabulary'],
    ]) {
      writeFileSync(input, content);
      const errors: string[] = [];
      const error = console.error;
      console.error = (...a: unknown[]) => errors.push(a.join(' '));
      try {
        expect(await main(['logits', '--model', model, '--input', input, '--out', join(work, 'x.bin')])).toBe(1);
      } finally {
        console.error = error;
      }
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(message);
    }
  });

  it('an output that cannot be written (a full disk) is an io error naming it, not an internal error', async () => {
    const model = join(work, 'pgm-learn-mlp4-ema');
    await pgm('convert', join(fixtures, 'pgm-learn-mlp4', 'model.ckpt'), model);
    const errors: string[] = [];
    const error = console.error;
    console.error = (...a: unknown[]) => errors.push(a.join(' '));
    try {
      expect(
        await main([
          'logits',
          '--model',
          model,
          '--input',
          join(fixtures, 'pgm-learn-mlp4', 'input.json'),
          '--out',
          '/dev/full',
        ]),
      ).toBe(1);
    } finally {
      console.error = error;
    }
    expect(errors).toEqual(['pgm: /dev/full: cannot write the logits (ENOSPC: no space left on device, write)']);
  });

  it('the installed binary exits non-zero with one line on stderr for an unknown architecture', async () => {
    const run = promisify(execFile);
    const err = await run(process.execPath, [
      '--import',
      'tsx',
      join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts'),
      'convert',
      join(import.meta.dirname, '..', 'convert', 'data', 'unknown-arch.ckpt'),
      join(work, 'u'),
    ]).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr.trim().split('\n')).toHaveLength(1);
    expect(err.stderr).toMatch(/^pgm: .*unknown-arch\.ckpt/);
  });
});
