import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import * as ort from 'onnxruntime-web';
import { afterAll, describe, expect, it } from 'vitest';
import { GpuModel } from '../../src/model/gpu-model.js';
import { loadCheckpoint } from '../../src/node.js';
import { compareRows, testGpu } from '../helpers/gpu.js';

// The bench's peer on a tiny PGM: training/export_onnx.py (Debian's python3-torch) writes the
// ONNX graph, the Lightning checkpoint and PyTorch's logits; onnxruntime-web (wasm EP, here in
// Node) runs the graph, our engine the checkpoint read by our converter; both must match PyTorch.
const run = promisify(execFile);
const root = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'pgm-peer-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const readFloats = (path: string): Float32Array => {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
};

describe('ONNX export for the onnxruntime-web peer', () => {
  it('ORT (wasm) and our engine (WebGPU) both reproduce PyTorch on the exported forward pass', async () => {
    const args = [
      'training/export_onnx.py',
      '--out',
      work,
      '--hidden-size',
      '32',
      '--n-heads',
      '2',
      '--blocks',
      '1',
      '--cond-dim',
      '16',
      '--vocab-size',
      '97',
      '--length',
      '32',
      '--clean',
      '10',
      '--queries',
      '5',
      '--seed',
      '3',
    ];
    // Fails loudly when PyTorch is missing: CI installs python3-torch (.ci/run).
    await run('/usr/bin/python3', args, { cwd: root, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    const seq = JSON.parse(readFileSync(join(work, 'input.json'), 'utf8')).sequences[0];
    const torchLogits = readFloats(join(work, 'logits.bin'));
    const V = 97;
    expect(torchLogits.length).toBe(5 * V);

    ort.env.wasm.numThreads = 1;
    const session = await ort.InferenceSession.create(readFileSync(join(work, 'model.onnx')), {
      executionProviders: ['wasm'],
    });
    const int64 = (xs: number[]) => new ort.Tensor('int64', BigInt64Array.from(xs, BigInt), [1, xs.length]);
    try {
      const out = await session.run({
        clean_tokens: int64(seq.tokens),
        clean_positions: int64(seq.positions),
        query_positions: int64(seq.queries),
      });
      expect(out.logits.dims).toEqual([1, 5, V]);
      const ortVsTorch = compareRows(out.logits.data as Float32Array, torchLogits, V);
      expect(ortVsTorch.maxAbs).toBeLessThanOrEqual(1e-4);
      expect(ortVsTorch.argmaxMismatches).toBe(0);
    } finally {
      await session.release();
    }

    const { config, weights } = await loadCheckpoint(join(work, 'model.ckpt'));
    const model = await GpuModel.load(await testGpu(), config, weights);
    try {
      const oursVsTorch = compareRows(await model.pgmLogits([seq]), torchLogits, V);
      expect(oursVsTorch.maxAbs).toBeLessThanOrEqual(1e-4);
      expect(oursVsTorch.argmaxMismatches).toBe(0);
    } finally {
      model.dispose();
    }
  });
});
