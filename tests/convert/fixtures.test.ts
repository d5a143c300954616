/**
 * Converts every checkpoint in tests/fixtures (see its README) with and without --no-ema and
 * checks the model directories against the fixture's meta.json. A missing fixture fails.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { expectedParameters } from '../../src/weights/parameters.js';
import { loadCheckpoint } from '../../src/convert/read-node.js';
import { loadModelDir } from '../../src/weights/load-node.js';
import { readWeights } from '../../src/weights/host-tensor.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures');
const NAMES = [
  'pgm-learn-freqs-linear',
  'pgm-first-step',
  'pgm-learn-mlp4',
  'pgm-mean-linear',
  'pgm-logsumexp-mlp4',
  'pgm-v50258',
  'pgm-bf16',
  'mdlm-tiny',
];

interface Meta {
  arch: 'pgm' | 'mdlm';
  shape: number[];
  storage_dtype: string;
  vocab_size: number;
  bos_id: number;
  mask_id: number;
  config: {
    model: Record<string, unknown> & {
      encoder?: { n_blocks: number };
      decoder?: { n_blocks: number };
      swap?: Record<string, string>;
    };
    sampling: { p_nucleus: number };
  };
}

let out: string;
beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'pgm-fixtures-'));
  vi.spyOn(console, 'log').mockImplementation(() => undefined); // conversion summaries
});
afterAll(() => rm(out, { recursive: true, force: true }));

describe('fixtures: pgm convert', () => {
  for (const name of NAMES) {
    it(name, async () => {
      const dir = join(FIXTURES, name);
      for (const f of ['model.ckpt', 'meta.json', 'logits.bin', 'logits-raw.bin', 'input.json']) {
        if (!existsSync(join(dir, f)))
          throw new Error(`fixture ${name} lacks ${f}; regenerate with /usr/bin/python3 training/make_fixtures.py`);
      }
      const meta = JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')) as Meta;
      expect(statSync(join(dir, 'logits.bin')).size).toBe(meta.shape.reduce((a, b) => a * b, 4));

      const loaded = [];
      for (const flags of [[], ['--no-ema']]) {
        const target = join(out, `${name}${flags.length ? '-raw' : ''}`);
        const code = await main(['convert', join(dir, 'model.ckpt'), target, ...flags]);
        expect(code).toBe(0);
        const model = await loadModelDir(target);
        loaded.push({ ...model, weights: await readWeights(model.weights) });
      }
      const [ema, raw] = loaded;
      const m = meta.config.model;
      expect(ema.config).toMatchObject({
        arch: meta.arch,
        vocabSize: meta.vocab_size,
        hiddenSize: m.hidden_size,
        nHeads: m.n_heads,
        condDim: m.cond_dim,
        length: m.length,
        maskId: meta.mask_id,
        bosId: meta.bos_id,
        pNucleus: meta.config.sampling.p_nucleus,
        mlpDim: (m.mlp_ratio as number) * (m.hidden_size as number),
      });
      if (meta.arch === 'pgm') {
        expect(ema.config).toMatchObject({
          encoderBlocks: m.encoder!.n_blocks,
          decoderBlocks: m.decoder!.n_blocks,
          preQueryMode: m.swap!.pre_query_mode,
          queryProcessMode: m.swap!.query_process_mode,
        });
      } else expect(ema.config.nBlocks).toBe(m.n_blocks);
      expect(raw.config).toEqual(ema.config);
      expect(ema.dirConfig.source).toMatchObject({ weights: 'ema', file: 'model.ckpt' });
      expect(raw.dirConfig.source).toMatchObject({ weights: 'raw' });

      const want = expectedParameters(ema.config);
      for (const { weights } of loaded) {
        expect(new Set(weights.keys())).toEqual(new Set(want.keys()));
        for (const [k, shape] of want) expect(weights.get(k)!.shape, k).toEqual(shape);
        expect(weights.has('rotary_emb.inv_freq')).toBe(false);
      }
      const differs = [...ema.weights].filter(([k, t]) => t.data.some((v, i) => v !== raw.weights.get(k)!.data[i]));
      expect(differs.length, 'EMA weights must differ from the raw state_dict').toBeGreaterThan(0);

      // The in-memory reader gives the very same float32 values.
      const direct = await loadCheckpoint(join(dir, 'model.ckpt'));
      const bytes = (a: Float32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      for (const [k, t] of direct.weights) expect(bytes(t.data).equals(bytes(ema.weights.get(k)!.data)), k).toBe(true);
    });
  }
});
