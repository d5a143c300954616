import { describe, expect, it } from 'vitest';
import {
  attention,
  conditioning,
  embed,
  gatedResidual,
  geluTanh,
  layerNorm,
  linear,
  logsumexpRows,
  meanRows,
  modulate,
  modulations,
  rope,
  rotaryInvFreq,
  silu,
  sinusoidal,
} from '../../src/reference/ops.js';
import { randomWeights, seededNormal, tinyConfig } from '../../src/reference/random.js';
import { PgmError } from '../../src/errors.js';

const randomArray = (size: number, seed: number, scale = 1): Float32Array => {
  const normal = seededNormal(seed);
  return Float32Array.from({ length: size }, () => scale * normal());
};

const dot = (a: ArrayLike<number>, b: ArrayLike<number>, from = 0, to = a.length): number => {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i] * b[i];
  return s;
};

const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};

describe('embed', () => {
  it('gathers table rows and rejects out-of-range tokens', () => {
    const table = { shape: [5, 3], data: Float32Array.from({ length: 15 }, (_, i) => i) };
    expect([...embed(table, [4, 0, 4])]).toEqual([12, 13, 14, 0, 1, 2, 12, 13, 14]);
    expect(() => embed(table, [5])).toThrow(PgmError);
  });
});

describe('layerNorm', () => {
  it('gives each row mean 0 and variance 1 without affine', () => {
    const rows = 7;
    const D = 48;
    const x = randomArray(rows * D, 1, 3).map((v, i) => v + (i % D === 0 ? 10 : 2));
    const y = layerNorm(x, rows, D);
    for (let r = 0; r < rows; r++) {
      const row = y.subarray(r * D, (r + 1) * D);
      const mean = row.reduce((a, b) => a + b, 0) / D;
      const variance = row.reduce((a, b) => a + (b - mean) ** 2, 0) / D;
      expect(Math.abs(mean)).toBeLessThan(1e-6);
      expect(variance).toBeCloseTo(1, 4);
    }
  });

  it('applies weight then bias per channel', () => {
    const D = 16;
    const x = randomArray(2 * D, 2);
    const w = randomArray(D, 3);
    const b = randomArray(D, 4);
    const plain = layerNorm(x, 2, D);
    const affine = layerNorm(x, 2, D, w, b);
    const weightOnly = layerNorm(x, 2, D, w);
    for (let i = 0; i < 2 * D; i++) {
      expect(affine[i]).toBeCloseTo(plain[i] * w[i % D] + b[i % D], 5);
      expect(weightOnly[i]).toBeCloseTo(plain[i] * w[i % D], 5);
    }
  });

  it('uses eps inside the square root', () => {
    const y = layerNorm(Float32Array.from([1, -1]), 1, 2, undefined, undefined, 1);
    expect(y[0]).toBeCloseTo(1 / Math.sqrt(2), 6);
  });
});

describe('elementwise ops', () => {
  it('modulate is x * (1 + scale) + shift per channel', () => {
    const y = modulate(
      Float32Array.from([1, 2, 3, 4]),
      2,
      2,
      Float32Array.from([10, 20]),
      Float32Array.from([1, -0.5]),
    );
    expect([...y]).toEqual([12, 21, 16, 22]);
  });

  it('gatedResidual is x + gate * y per channel', () => {
    const y = gatedResidual(
      Float32Array.from([1, 1, 1, 1]),
      Float32Array.from([1, 2, 3, 4]),
      Float32Array.from([0, 0.5]),
      2,
      2,
    );
    expect([...y]).toEqual([1, 2, 1, 3]);
  });

  it('geluTanh and silu match known values', () => {
    const g = geluTanh(Float32Array.from([0, 1, -1, 3]));
    expect(g[0]).toBe(0);
    expect(g[1]).toBeCloseTo(0.8411920071, 6);
    expect(g[2]).toBeCloseTo(-0.1588079929, 6);
    expect(g[3]).toBeCloseTo(2.9963626862, 6);
    const s = silu(Float32Array.from([0, 1, -2]));
    expect(s[0]).toBe(0);
    expect(s[1]).toBeCloseTo(1 / (1 + Math.exp(-1)), 6);
    expect(s[2]).toBeCloseTo(-2 / (1 + Math.exp(2)), 6);
  });
});

describe('linear', () => {
  it('computes x @ W^T + b with W stored [out, in]', () => {
    const x = Float32Array.from([1, 2, 3, 4, 5, 6]); // [2, 3]
    const W = Float32Array.from([1, 0, 0, 0, 1, 1]); // [2, 3]
    expect([...linear(x, 2, 3, W, 2)]).toEqual([1, 5, 4, 11]);
    expect([...linear(x, 2, 3, W, 2, Float32Array.from([0.5, -1]))]).toEqual([1.5, 4, 4.5, 10]);
  });

  it('rejects mismatched shapes', () => {
    expect(() => linear(new Float32Array(6), 2, 3, new Float32Array(5), 2)).toThrow(PgmError);
  });
});

describe('rope', () => {
  const H = 3;
  const dh = 8;
  const D = H * dh;

  it('uses inv_freq = 1/10000^(2i/dh)', () => {
    const inv = rotaryInvFreq(dh);
    for (let i = 0; i < dh / 2; i++) expect(inv[i]).toBeCloseTo(1 / 10000 ** ((2 * i) / dh), 7);
  });

  it('is the identity at position 0 and preserves every head norm', () => {
    const x = randomArray(4 * D, 5);
    expect(maxAbsDiff(rope(x, 4, H, dh, [0, 0, 0, 0]), x)).toBe(0);
    const y = rope(x, 4, H, dh, [1, 17, 300, 1023]);
    for (let r = 0; r < 4; r++) {
      for (let h = 0; h < H; h++) {
        const o = r * D + h * dh;
        expect(dot(y, y, o, o + dh)).toBeCloseTo(dot(x, x, o, o + dh), 4);
      }
    }
  });

  it('equals multiplying (x1 + i x2) by exp(i p inv_freq)', () => {
    const x = randomArray(D, 6);
    const p = 37;
    const y = rope(x, 1, H, dh, [p]);
    const inv = rotaryInvFreq(dh);
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < dh / 2; i++) {
        const re = x[h * dh + i];
        const im = x[h * dh + dh / 2 + i];
        const a = p * inv[i];
        expect(y[h * dh + i]).toBeCloseTo(re * Math.cos(a) - im * Math.sin(a), 5);
        expect(y[h * dh + dh / 2 + i]).toBeCloseTo(re * Math.sin(a) + im * Math.cos(a), 5);
      }
    }
  });

  it('makes q.k depend only on the relative position', () => {
    const q = randomArray(dh, 7);
    const k = randomArray(dh, 8);
    const score = (pq: number, pk: number): number => dot(rope(q, 1, 1, dh, [pq]), rope(k, 1, 1, dh, [pk]));
    const base = score(5, 2);
    for (const s of [1, 10, 100, 400]) expect(score(5 + s, 2 + s)).toBeCloseTo(base, 3);
    expect(Math.abs(score(5, 3) - base)).toBeGreaterThan(1e-3);
  });

  it('rotates only the heads at colOffset within rows of rowStride', () => {
    const rows = 3;
    const stride = 3 * D;
    const qkv = randomArray(rows * stride, 9);
    const positions = [2, 9, 40];
    const rotated = rope(qkv, rows, H, dh, positions, stride, D);
    const k = new Float32Array(rows * D);
    for (let r = 0; r < rows; r++) k.set(qkv.subarray(r * stride + D, r * stride + 2 * D), r * D);
    const kRotated = rope(k, rows, H, dh, positions);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < stride; c++) {
        const expected = c >= D && c < 2 * D ? kRotated[r * D + c - D] : qkv[r * stride + c];
        expect(rotated[r * stride + c]).toBe(expected);
      }
    }
  });
});

describe('attention', () => {
  const H = 2;
  const dh = 4;
  const D = H * dh;

  it('returns v when there is a single key', () => {
    const q = randomArray(3 * D, 10);
    const k = randomArray(D, 11);
    const v = randomArray(D, 12);
    const out = attention(q, k, v, 3, 1, H, dh);
    for (let i = 0; i < 3; i++) expect(maxAbsDiff(out.subarray(i * D, (i + 1) * D), v)).toBeLessThan(1e-7);
  });

  it('averages the values when the query is zero', () => {
    const n = 5;
    const v = randomArray(n * D, 13);
    const out = attention(new Float32Array(D), randomArray(n * D, 14), v, 1, n, H, dh);
    for (let c = 0; c < D; c++) {
      let mean = 0;
      for (let j = 0; j < n; j++) mean += v[j * D + c] / n;
      expect(out[c]).toBeCloseTo(mean, 6);
    }
  });

  it('matches a per-head softmax(q k^T / sqrt(dh)) v', () => {
    const m = 3;
    const n = 4;
    const q = randomArray(m * D, 15);
    const k = randomArray(n * D, 16);
    const v = randomArray(n * D, 17);
    const out = attention(q, k, v, m, n, H, dh);
    for (let i = 0; i < m; i++) {
      for (let h = 0; h < H; h++) {
        const s = Array.from({ length: n }, (_, j) =>
          Math.exp(
            dot(q.subarray(i * D + h * dh, i * D + h * dh + dh), k.subarray(j * D + h * dh, j * D + h * dh + dh)) /
              Math.sqrt(dh),
          ),
        );
        const z = s.reduce((a, b) => a + b, 0);
        for (let d = 0; d < dh; d++) {
          const expected = s.reduce((acc, w, j) => acc + (w / z) * v[j * D + h * dh + d], 0);
          expect(out[i * D + h * dh + d]).toBeCloseTo(expected, 5);
        }
      }
    }
  });

  it('ignores keys at index >= nValidKeys', () => {
    const m = 2;
    const nValid = 3;
    const n = 6;
    const q = randomArray(m * D, 18);
    const k = randomArray(n * D, 19);
    const v = randomArray(n * D, 20);
    const kGarbage = k.map((x, i) => (i >= nValid * D ? 1e3 * x : x));
    const vGarbage = v.map((x, i) => (i >= nValid * D ? -1e3 : x));
    const padded = attention(q, kGarbage, vGarbage, m, n, H, dh, nValid);
    const trimmed = attention(q, k.slice(0, nValid * D), v.slice(0, nValid * D), m, nValid, H, dh);
    expect([...padded]).toEqual([...trimmed]);
    expect([...attention(q, k, v, m, n, H, dh, 0)]).toEqual(new Array(m * D).fill(0));
  });
});

describe('sinusoidal', () => {
  it('is concat(cos(p/den), sin(p/den)) with den_i = 10000^(2i/D)', () => {
    const D = 12;
    const s = sinusoidal([0, 5, 700], D);
    expect([...s.subarray(0, D)]).toEqual([...new Array(D / 2).fill(1), ...new Array(D / 2).fill(0)]);
    for (const [r, p] of [
      [1, 5],
      [2, 700],
    ]) {
      for (let i = 0; i < D / 2; i++) {
        const a = p / 10000 ** ((2 * i) / D);
        expect(s[r * D + i]).toBeCloseTo(Math.cos(a), 4);
        expect(s[r * D + D / 2 + i]).toBeCloseTo(Math.sin(a), 4);
      }
    }
  });
});

describe('pre-query statistics', () => {
  const D = 3;
  const x = Float32Array.from([1, 2, 3, 3, 4, -5, 100, 100, 100]); // the last row is padding

  it('mean over the valid rows, zeros without any', () => {
    expect([...meanRows(x, 2, D)]).toEqual([2, 3, -1]);
    expect([...meanRows(x, 0, D)]).toEqual([0, 0, 0]);
  });

  it('per-channel logsumexp over the valid rows, zeros without any', () => {
    const y = logsumexpRows(x, 2, D);
    expect(y[0]).toBeCloseTo(Math.log(Math.exp(1) + Math.exp(3)), 6);
    expect(y[1]).toBeCloseTo(Math.log(Math.exp(2) + Math.exp(4)), 6);
    expect(y[2]).toBeCloseTo(Math.log(Math.exp(3) + Math.exp(-5)), 6);
    expect([...logsumexpRows(x, 0, D)]).toEqual([0, 0, 0]);
    expect(logsumexpRows(Float32Array.from([1000, 1000]), 2, 1)[0]).toBeCloseTo(1000 + Math.log(2), 3);
  });
});

describe('conditioning and modulations', () => {
  it('c = silu(mlp2(silu(mlp0([1 x128, 0 x128]))))', () => {
    const config = tinyConfig('pgm');
    const weights = randomWeights(config, 1);
    const C = config.condDim;
    const w0 = weights.get('sigma_map.mlp.0.weight')!.data;
    const b0 = weights.get('sigma_map.mlp.0.bias')!.data;
    const w2 = weights.get('sigma_map.mlp.2.weight')!.data;
    const b2 = weights.get('sigma_map.mlp.2.bias')!.data;
    const siluN = (v: number): number => v / (1 + Math.exp(-v));
    const hidden = Array.from({ length: C }, (_, o) => {
      let s = b0[o];
      for (let i = 0; i < 128; i++) s += w0[o * 256 + i];
      return siluN(s);
    });
    const c = conditioning(weights, config);
    for (let o = 0; o < C; o++) {
      const expected = siluN(hidden.reduce((acc, h, i) => acc + h * w2[o * C + i], b2[o]));
      expect(c[o]).toBeCloseTo(expected, 5);
    }
  });

  it('splits each adaLN_modulation(c) in the order shift, scale, gate (msa then mlp)', () => {
    const config = tinyConfig('pgm');
    const weights = randomWeights(config, 2);
    const D = config.hiddenSize;
    const C = config.condDim;
    const c = conditioning(weights, config);
    const mods = modulations(weights, config);
    expect(mods.encoder).toHaveLength(config.encoderBlocks);
    expect(mods.decoder).toHaveLength(config.decoderBlocks);
    expect(mods.blocks).toHaveLength(0);
    const full = linear(
      c,
      1,
      C,
      weights.get('decoder.layers.1.adaLN_modulation.weight')!.data,
      6 * D,
      weights.get('decoder.layers.1.adaLN_modulation.bias')!.data,
    );
    const m = mods.decoder[1];
    [m.shiftMsa, m.scaleMsa, m.gateMsa, m.shiftMlp, m.scaleMlp, m.gateMlp].forEach((part, i) => {
      expect([...part]).toEqual([...full.subarray(i * D, (i + 1) * D)]);
    });
    const out = linear(
      c,
      1,
      C,
      weights.get('output_layer.adaLN_modulation.weight')!.data,
      2 * D,
      weights.get('output_layer.adaLN_modulation.bias')!.data,
    );
    expect([...mods.output.shift]).toEqual([...out.subarray(0, D)]);
    expect([...mods.output.scale]).toEqual([...out.subarray(D)]);
    // Gates must matter in tests built on random weights.
    expect(Math.max(...m.gateMsa.map(Math.abs))).toBeGreaterThan(0.2);

    const mdlm = tinyConfig('mdlm');
    const mdlmMods = modulations(randomWeights(mdlm, 3), mdlm);
    expect(mdlmMods.blocks).toHaveLength(mdlm.nBlocks);
    expect(mdlmMods.encoder).toHaveLength(0);
  });
});
