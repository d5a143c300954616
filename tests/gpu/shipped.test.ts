import { describe, expect, it } from 'vitest';
import { findModel, validateManifest, type WeightsManifest } from '../../src/weights/manifest.js';
import { GpuModel } from '../../src/model/gpu-model.js';
import type { LoadedModel } from '../../src/weights/load.js';
import { compareRows, runtime, testGpu } from '../helpers/gpu.js';

// The shipped models (models/<id>, listed in weights-manifest.json, written by training/ship.sh)
// against PyTorch fp32 logits of the same f16-rounded EMA weights (tests/fixtures/shipped/<id>,
// written by `training/ship.py fixture`). Node reads the files from disk; Chromium fetches them
// from the vitest server, which serves the project root.
const inNode = runtime === 'node';

async function readBytes(path: string): Promise<Uint8Array> {
  if (inNode) {
    const { readFile } = await import('node:fs/promises');
    const { fileURLToPath } = await import('node:url');
    return new Uint8Array(await readFile(fileURLToPath(new URL(`../../${path}`, import.meta.url))));
  }
  const res = await fetch(`/${path}`);
  if (!res.ok) throw new Error(`/${path}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

const readJson = async <T>(path: string): Promise<T> =>
  JSON.parse(new TextDecoder().decode(await readBytes(path))) as T;
const readFloats = async (path: string): Promise<Float32Array> => {
  const b = await readBytes(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

async function loadShipped(manifest: WeightsManifest, id: string): Promise<LoadedModel> {
  const entry = findModel(manifest, id);
  if (inNode) {
    const { loadModelDir } = await import('../../src/weights/load-node.js');
    const { fileURLToPath } = await import('node:url');
    return loadModelDir(fileURLToPath(new URL(`../../${entry.path}/`, import.meta.url)), { manifestEntry: entry });
  }
  const { loadModelFromUrl } = await import('../../src/weights/load.js');
  return loadModelFromUrl(`/${entry.path}/`, { manifestEntry: entry });
}

interface Meta {
  arch: 'pgm' | 'mdlm';
  shape: number[];
  rows?: number[];
  vocab_size: number;
}

describe(`shipped models vs PyTorch (${runtime})`, () => {
  for (const id of ['pgm-small', 'mdlm-small']) {
    it(`${id}: logits of the f16 model directory, max abs error <= 1e-4, same argmax`, async () => {
      const manifest = validateManifest(await readJson('weights-manifest.json'));
      const loaded = await loadShipped(manifest, id);
      const dir = `tests/fixtures/shipped/${id}`;
      const meta = await readJson<Meta>(`${dir}/meta.json`);
      const input = await readJson<{ sequences: { tokens: number[]; positions?: number[]; queries?: number[] }[] }>(
        `${dir}/input.json`,
      );
      const want = await readFloats(`${dir}/logits.bin`);
      const V = loaded.config.vocabSize;
      expect(loaded.config.arch).toBe(meta.arch);
      expect(V).toBe(meta.vocab_size);
      expect(loaded.config.vocabMap).toHaveLength(V);
      expect(loaded.dirConfig.dtype).toBe('f16');
      const model = await GpuModel.load(await testGpu(), loaded.config, loaded.weights, {
        maxBatch: input.sequences.length,
      });
      try {
        let got: Float32Array;
        if (meta.arch === 'pgm') {
          got = await model.pgmLogits(
            input.sequences.map((s) => ({ tokens: s.tokens, positions: s.positions!, queries: s.queries! })),
          );
          expect(got.length).toBe(meta.shape.reduce((a, b) => a * b, 1));
        } else {
          const full = await model.mdlmLogits(input.sequences.map((s) => ({ tokens: s.tokens })));
          expect(full.length).toBe(meta.shape.reduce((a, b) => a * b, 1));
          const rows = meta.rows!;
          got = new Float32Array(rows.length * V);
          rows.forEach((r, i) => got.set(full.subarray(r * V, (r + 1) * V), i * V));
        }
        const { maxAbs, argmaxMismatches } = compareRows(got, want, V);
        expect(maxAbs).toBeLessThanOrEqual(1e-4);
        expect(argmaxMismatches).toBe(0);
      } finally {
        model.dispose();
      }
    });
  }

  it('weights-manifest.json: default pgm-small, twins, shards of the model directories', async () => {
    const manifest = validateManifest(await readJson('weights-manifest.json'));
    expect(manifest.default).toBe('pgm-small');
    const ids = manifest.models.map((m) => m.id);
    expect(ids).toEqual(['pgm-small', 'mdlm-small']);
    for (const m of manifest.models) {
      expect(m.twin).toBe(m.id === 'pgm-small' ? 'mdlm-small' : 'pgm-small');
      expect(m.path).toBe(`models/${m.id}`);
      const cfg = await readJson<{ shards: unknown }>(`${m.path}/config.json`);
      expect(cfg.shards).toEqual(m.shards);
      expect(m.shards.reduce((a, s) => a + s.size, 0)).toBeLessThanOrEqual(25e6);
    }
  });

  if (inNode) {
    it('createEngine() without a model loads the manifest default and generates text', async () => {
      const { createEngine } = await import('../../src/node.js');
      const engine = await createEngine({ maxBatch: 1 });
      try {
        expect(engine.gpuModel.config.arch).toBe('pgm');
        const { text, tokens } = await engine.generate({ prompt: 'The', length: 24, steps: 4, seed: 1 });
        expect(tokens).toHaveLength(24);
        expect(typeof text).toBe('string');
        expect(text.length).toBeGreaterThan(0);
        expect(text).not.toContain('▯');
      } finally {
        engine.dispose();
      }
    });
  }
});
