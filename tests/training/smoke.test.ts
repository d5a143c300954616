import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { createEngine } from '../../src/node.js';

// Train a tiny PGM for a few steps on a slice of the corpus with the real training code
// (Debian's python3-torch), convert its Lightning checkpoint with our converter, generate.
const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'pgm-train-smoke-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('training smoke test', () => {
  it('the loss goes down, the checkpoint converts and generates in the engine', async () => {
    const out = join(work, 'run');
    const args = [
      '-m',
      'pgm.train',
      '--data',
      join(root, 'tests', 'training', 'data'),
      '--out',
      out,
      '--vocab-size',
      '512',
      '--bos-id',
      '510',
      '--length',
      '32',
      '--hidden-size',
      '32',
      '--n-heads',
      '2',
      '--cond-dim',
      '16',
      '--encoder-blocks',
      '1',
      '--decoder-blocks',
      '1',
      '--steps',
      '80',
      '--batch-size',
      '16',
      '--lr',
      '3e-3',
      '--warmup',
      '8',
      '--ema',
      '0.9',
      '--eval-every',
      '40',
      '--log-every',
      '10',
      '--threads',
      '1',
      '--save-every',
      '80',
      '--seed',
      '0',
    ];
    // Fails loudly when PyTorch is missing: CI installs python3-torch (.ci/run).
    await run('/usr/bin/python3', args, { cwd: join(root, 'training'), env: { ...process.env, OMP_NUM_THREADS: '1' } });
    const log = readFileSync(join(out, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const losses = log.filter((r) => 'loss' in r).map((r) => r.loss as number);
    const vals = log.filter((r) => 'val_bound' in r).map((r) => r.val_bound as number);
    expect(losses.length).toBeGreaterThanOrEqual(8);
    expect(losses.slice(-3).reduce((a, b) => a + b) / 3).toBeLessThan(losses[0] - 0.5);
    expect(vals.at(-1)!).toBeLessThan(Math.log(512)); // better than uniform over the vocabulary

    const model = join(work, 'model');
    expect(await main(['convert', join(out, 'last.ckpt'), model, '--dtype', 'f16'])).toBe(0);
    const config = JSON.parse(readFileSync(join(model, 'config.json'), 'utf8'));
    expect(config.model.vocabMap).toHaveLength(512); // the reduced vocabulary travels with the model
    const engine = await createEngine({ model });
    try {
      const result = await engine.generate({ prompt: 'It was', length: 32, steps: 8, seed: 1 });
      expect(result.text.startsWith('It was')).toBe(true);
      expect([...result.tokens].every((t) => t >= 0 && t <= 50256)).toBe(true);
    } finally {
      engine.dispose();
    }
  });
});
