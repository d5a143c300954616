import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Checkpoint, type StorageRef } from '../../src/convert/checkpoint.js';
import { convertCheckpoint, inspectCheckpoint } from '../../src/convert/convert.js';
import { dirSink } from '../../src/convert/sink-node.js';
import { bytesSource } from '../../src/convert/source.js';
import { loadCheckpoint } from '../../src/convert/read-node.js';
import { loadModelDir } from '../../src/weights/load-node.js';
import { readWeights } from '../../src/weights/host-tensor.js';
import { pgmError } from './helpers.js';

const DATA = join(import.meta.dirname, 'data');
type Exact = Record<string, { shape: number[]; values: number[] }>;
const expected = JSON.parse(readFileSync(join(DATA, 'expected.json'), 'utf8')) as {
  ema: Exact;
  raw: Exact;
  ignored: string[];
  config: Record<string, Record<string, unknown>>;
};
const tmp: string[] = [];
afterAll(() => Promise.all(tmp.map((d) => rm(d, { recursive: true, force: true }))));
const tempDir = async (): Promise<string> => {
  const d = await mkdtemp(join(tmpdir(), 'pgm-convert-'));
  tmp.push(d);
  return d;
};

describe('checkpoint reader on tests/convert/data (regenerate with make.py)', () => {
  for (const file of ['mdlm-edge.ckpt', 'mdlm-edge-deflate.ckpt']) {
    for (const ema of [true, false]) {
      it(`${file}, ${ema ? 'EMA' : 'raw'}: f16/bf16/f64 storages, strided and offset views, exact values`, async () => {
        const { config, weights, ignored, source, warnings } = await loadCheckpoint(join(DATA, file), { ema });
        const want = ema ? expected.ema : expected.raw;
        expect([...weights.keys()]).toEqual(Object.keys(want));
        for (const [name, t] of weights) {
          expect(t.shape, name).toEqual(want[name].shape);
          expect(Array.from(t.data), name).toEqual(want[name].values.map(Math.fround));
        }
        expect(ignored).toEqual(expected.ignored);
        expect(config).toMatchObject({
          arch: 'mdlm',
          vocabSize: 10,
          hiddenSize: 8,
          nHeads: 2,
          condDim: 4,
          mlpDim: 12,
          length: 8,
          nBlocks: 2,
          maskId: 9,
          bosId: 8,
          pNucleus: 0.9,
        });
        expect(source.hyperParameters).toEqual(expected.config);
        expect(source.weights).toBe(ema ? 'ema' : 'raw');
        if (ema) {
          expect(source.ema).toEqual({ decay: 0.9999, numUpdates: 1234, shadowParams: 31 });
          expect(warnings).toEqual(['ignored 1 trailing EMA tensor(s) of non-backbone modules']);
        }
      });
    }
  }

  it('reads each tensor in pieces of any size, the values of a whole read (strided views gathered whole)', async () => {
    for (const file of ['mdlm-edge.ckpt', 'mdlm-edge-deflate.ckpt']) {
      const ckpt = await Checkpoint.open(bytesSource(readFileSync(join(DATA, file)), file));
      for (const { name, tensor } of inspectCheckpoint(ckpt).parameters) {
        const whole = await ckpt.readFloat32(tensor, name);
        const pieces: Float32Array[] = [];
        for await (const piece of ckpt.float32Chunks(tensor, name, 3)) pieces.push(piece);
        expect(Float32Array.from(pieces.flatMap((p) => [...p])), name).toEqual(whole);
        if (pieces.length > 1) expect(Math.max(...pieces.map((p) => p.length)), name).toBe(3);
      }
    }
  });

  it('the zip prefix is the archive top folder, not always "archive"', async () => {
    const ckpt = await Checkpoint.open(bytesSource(readFileSync(join(DATA, 'mdlm-edge.ckpt')), 'mdlm-edge.ckpt'));
    expect(ckpt.prefix).toBe('mdlm-edge');
  });

  it('refuses a checkpoint whose pickle calls os.system, and runs nothing', async () => {
    const marker = '/tmp/pgm-convert-test-pwned';
    const e = await pgmError(() => loadCheckpoint(join(DATA, 'evil.ckpt')));
    expect(e.code).toBe('unsafe-pickle');
    expect(e.message).toBe(
      'evil.ckpt: pickle references forbidden global posix.system; refusing to load (checkpoints are untrusted input)',
    );
    expect(existsSync(marker)).toBe(false);
  });

  it('explains EMA and architecture problems', async () => {
    const cases: [string, string, RegExp][] = [
      [
        'bad-ema-count.ckpt',
        'checkpoint',
        /^bad-ema-count\.ckpt: ema\.shadow_params has 29 tensors but the backbone has 30 parameters/,
      ],
      [
        'bad-ema-shape.ckpt',
        'checkpoint',
        /^bad-ema-shape\.ckpt: ema\.shadow_params\[2\] has shape \[5, 4\] but state_dict parameter #2 sigma_map\.mlp\.0\.bias has \[4\]$/,
      ],
      ['no-ema.ckpt', 'checkpoint', /no EMA weights \(no "ema" entry\); pass --no-ema/],
      [
        'unknown-arch.ckpt',
        'architecture',
        /unrecognized backbone \(found transformer\.wte, transformer\.h\); expected a PGM PartitionDIT/,
      ],
    ];
    for (const [file, code, re] of cases) {
      const e = await pgmError(() => loadCheckpoint(join(DATA, file)));
      expect([e.code, e.message]).toEqual([code, expect.stringMatching(re)]);
    }
    const raw = await loadCheckpoint(join(DATA, 'no-ema.ckpt'), { ema: false });
    expect(raw.weights.size).toBe(30);
  });

  it('a conversion that fails part-way leaves no partial files and no config.json', async () => {
    const bytes = new Uint8Array(readFileSync(join(DATA, 'mdlm-edge.ckpt')));
    const ckpt = await Checkpoint.open(bytesSource(bytes.slice(), 'x.ckpt'));
    // Corrupt the storage of the last tensor written, so the CRC check fails mid-way.
    const storage = inspectCheckpoint(ckpt).parameters.at(-1)!.tensor.storage as StorageRef;
    const last = ckpt.zip.get(storage.entry)!;
    const dv = new DataView(bytes.buffer);
    bytes[
      last.localHeaderOffset +
        30 +
        dv.getUint16(last.localHeaderOffset + 26, true) +
        dv.getUint16(last.localHeaderOffset + 28, true)
    ] ^= 0xff;
    const dir = await tempDir();
    const e = await pgmError(async () =>
      convertCheckpoint(await Checkpoint.open(bytesSource(bytes, 'broken.ckpt')), await dirSink(dir)),
    );
    expect(e.message).toMatch(/^broken\.ckpt: entry mdlm-edge\/data\/\d+: CRC-32 mismatch; the file is corrupt$/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('converts to f16 shards with an index and loads them back', async () => {
    const dir = await tempDir();
    const ckpt = await Checkpoint.open(bytesSource(readFileSync(join(DATA, 'mdlm-edge.ckpt')), 'mdlm-edge.ckpt'));
    const result = await convertCheckpoint(ckpt, await dirSink(dir), { dtype: 'f16', shardSize: 3000 });
    const shards = result.dirConfig.shards.map((s) => s.file);
    expect(shards.length).toBeGreaterThan(1);
    expect(shards[0]).toBe(`model-00001-of-${String(shards.length).padStart(5, '0')}.safetensors`);
    expect((await readdir(dir)).sort()).toEqual([...shards, 'config.json', 'model.safetensors.index.json'].sort());
    const index = JSON.parse(readFileSync(join(dir, 'model.safetensors.index.json'), 'utf8')) as {
      weight_map: Record<string, string>;
    };
    expect(Object.keys(index.weight_map)).toEqual(Object.keys(expected.ema));
    const { dirConfig, weights } = await loadModelDir(dir);
    expect(dirConfig.dtype).toBe('f16');
    for (const [name, t] of await readWeights(weights)) {
      t.data.forEach((v, i) =>
        expect(Math.abs(v - expected.ema[name].values[i])).toBeLessThanOrEqual(
          Math.abs(expected.ema[name].values[i]) * 2 ** -10 + 2 ** -24,
        ),
      );
    }
    expect(inspectCheckpoint(ckpt, { ema: false }).source.weights).toBe('raw');
  });
});
