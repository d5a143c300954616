/**
 * Kernel plans (src/tuning/tuning.ts): forced variants, the measurement per row-count bucket
 * and matmul weight shape on this adapter, and remembering the plan per adapter. Correctness of each variant is in kernels.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { PgmError } from '../../src/errors.js';
import { KernelCache } from '../../src/gpu/kernel.js';
import {
  ANY_SHAPE,
  ATTENTION_VARIANTS,
  bucketRange,
  everyBucket,
  isPlan,
  MATMUL_VARIANTS,
  matmulBuckets,
  matmulKey,
  matmulShapes,
  ROW_BUCKETS,
  VARIANT_SET_VERSION,
  type KernelPlan,
  type ModelShapes,
} from '../../src/kernels/plan.js';
import { forgetPlans, idbPlans, planKey, recall, remember } from '../../src/tuning/plan-store.js';
import { GpuModel } from '../../src/model/gpu-model.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';
import { kernelPlan, measurePlan } from '../../src/tuning/tuning.js';
import { runtime, testGpu } from '../helpers/gpu.js';

const tiny: ModelShapes = { D: 64, F: 256, V: 300, L: 48, nHeads: 4, headDim: 16 };

describe(`kernel plan (${runtime})`, () => {
  it('forced variants are used as given, at every row count', async () => {
    const gpu = await testGpu();
    const plan = await kernelPlan(gpu, new KernelCache(gpu.device), tiny, { matmul: 'splitk', attention: 'flash' });
    expect(plan).toEqual({ matmul: { [ANY_SHAPE]: everyBucket('splitk') }, attention: everyBucket('flash') });
  });

  it('an unknown variant is an option error naming the choices', async () => {
    const gpu = await testGpu();
    const err = await kernelPlan(gpu, new KernelCache(gpu.device), tiny, { matmul: 'fast' as never }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PgmError);
    expect((err as PgmError).message).toMatch(/GpuModelOptions\.matmul .*register, wide, tall, tiled, splitk.*"fast"/);
  });

  it('broadcast (subgroups) is measured where the device has subgroups; a device without them never plans it, and forcing it is an option error', async () => {
    const gpu = await testGpu();
    expect(gpu.device.features.has('subgroups'), 'all three test adapters have subgroups').toBe(true);
    const withSubgroups = await measurePlan(gpu.device, new KernelCache(gpu.device), tiny);
    expect(new Set(withSubgroups.measurements.map((m) => m.variant))).toContain('broadcast');
    const adapter = await gpu.gpu.requestAdapter();
    const plain = await adapter!.requestDevice(); // no features asked for
    try {
      expect(plain.features.has('subgroups')).toBe(false);
      const { plan, measurements } = await measurePlan(plain, new KernelCache(plain), tiny);
      expect(measurements.length).toBeGreaterThan(0);
      expect(measurements.map((m) => m.variant)).not.toContain('broadcast');
      expect(Object.values(plan.matmul).flat()).not.toContain('broadcast');
      // The adapter's remembered plan (here: broadcast everywhere) is not this device's.
      const everywhere: KernelPlan = {
        matmul: Object.fromEntries(matmulShapes(tiny).map((shape) => [matmulKey(...shape), everyBucket('broadcast')])),
        attention: everyBucket('thread'),
      };
      await remember(planKey(gpu.adapter), everywhere);
      const own = await kernelPlan({ ...gpu, device: plain }, new KernelCache(plain), tiny);
      expect(Object.values(own.matmul).flat()).not.toContain('broadcast');
      expect(await kernelPlan(gpu, new KernelCache(gpu.device), tiny)).toEqual(everywhere);
      await forgetPlans(gpu.adapter);
      const err = await kernelPlan({ ...gpu, device: plain }, new KernelCache(plain), tiny, {
        matmul: 'broadcast',
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PgmError);
      expect((err as PgmError).message).toMatch(/'broadcast' needs the WebGPU feature 'subgroups'/);
    } finally {
      plain.destroy();
    }
  });

  it('a remembered plan naming a variant the device cannot run (broadcast under the key of a device without subgroups) is as good as none: measured again, rewritten, and models load', async () => {
    const gpu = await testGpu();
    const plain = await (await gpu.gpu.requestAdapter())!.requestDevice(); // no subgroups
    try {
      const key = planKey(gpu.adapter, false);
      const unrunnable: KernelPlan = {
        matmul: Object.fromEntries(matmulShapes(tiny).map(([K, N]) => [matmulKey(K, N), everyBucket('broadcast')])),
        attention: everyBucket('thread'),
      };
      await forgetPlans(gpu.adapter);
      // In the store only (a copied cache file, a localStorage value from elsewhere): Node's plan file, or localStorage.
      if (typeof window !== 'undefined') window.localStorage.setItem(key, JSON.stringify(unrunnable));
      else await remember(key, unrunnable);
      const plan = await kernelPlan({ ...gpu, device: plain }, new KernelCache(plain), tiny);
      expect(Object.values(plan.matmul).flat()).not.toContain('broadcast');
      expect(await recall(key)).toEqual(plan);
      if (typeof window !== 'undefined') expect(JSON.parse(window.localStorage.getItem(key)!)).toEqual(plan);
      // What every createEngine on such a device did before: fail with an option error.
      const config = tinyConfig('pgm', { vocabSize: 40, hiddenSize: 16, nHeads: 2, condDim: 8, length: 12 });
      const shapes = {
        D: config.hiddenSize,
        F: config.mlpDim,
        V: config.vocabSize,
        L: config.length,
        nHeads: config.nHeads,
        headDim: config.hiddenSize / config.nHeads,
      };
      await remember(key, {
        matmul: Object.fromEntries(matmulShapes(shapes).map(([K, N]) => [matmulKey(K, N), everyBucket('broadcast')])),
        attention: everyBucket('thread'),
      });
      const model = await GpuModel.load({ ...gpu, device: plain }, config, randomWeights(config, 1));
      model.dispose();
    } finally {
      await forgetPlans(gpu.adapter);
      plain.destroy();
    }
  });

  it('the measurement times each weight shape in each bucket L reaches, at a row count of that bucket, and picks the fastest', async () => {
    const gpu = await testGpu();
    const { plan, measurements } = await measurePlan(gpu.device, new KernelCache(gpu.device), tiny);
    const keys = matmulShapes(tiny).map((shape) => matmulKey(...shape));
    // [D, D] with and without a LayerNorm prologue; [D, 4D] = [D, F] once.
    expect(keys).toEqual(['64x192:norm', '64x64', '64x64:norm', '64x256:norm', '256x64', '64x128', '64x300:norm']);
    expect(Object.keys(plan.matmul)).toEqual(keys);
    expect(isPlan(plan)).toBe(true);
    for (const m of measurements) {
      // A clock that reads nothing (all zeros) would pass the choice below: whatever came first wins.
      expect(m.ms, `${m.kernel} ${m.variant} [${m.shape}]`).toBeGreaterThan(0);
      expect(Number.isFinite(m.ms)).toBe(true);
      const [least, most] = bucketRange(m.bucket);
      expect(m.shape[0], `${m.key} bucket ${m.bucket}`).toBeGreaterThan(least);
      expect(m.shape[0]).toBeLessThanOrEqual(Math.min(most, tiny.L));
    }
    // L = 48 reaches buckets 0..4; the buckets above take bucket 4's choice.
    const timed = new Set(measurements.map((m) => `${m.key}/${m.bucket}`));
    for (const key of [...keys, 'attention']) {
      const buckets = key === 'attention' ? plan.attention : plan.matmul[key];
      expect(buckets.slice(5), key).toEqual([buckets[4], buckets[4]]);
      for (let bucket = 0; bucket < 5; bucket++) {
        if (!timed.has(`${key}/${bucket}`)) continue; // one candidate: chosen unmeasured
        const fastest = measurements.filter((m) => m.key === key && m.bucket === bucket).sort((a, b) => a.ms - b.ms)[0];
        expect(buckets[bucket], `${key} bucket ${bucket}`).toBe(fastest.variant);
      }
    }
    // At least the matmul buckets are timed on every adapter (register against wide at few rows).
    for (const key of keys)
      for (let bucket = 0; bucket < 5; bucket++) expect(timed.has(`${key}/${bucket}`), `${key}/${bucket}`).toBe(true);
    expect(ROW_BUCKETS.length).toBe(plan.attention.length);
    for (const v of plan.attention) expect(ATTENTION_VARIANTS).toContain(v);
    for (const v of Object.values(plan.matmul).flat()) expect(MATMUL_VARIANTS).toContain(v);
  });

  it('a model whose matmul weights are f16 is timed with f16 weights, and its dispatches read those entries', async () => {
    const gpu = await testGpu();
    const { plan } = await measurePlan(gpu.device, new KernelCache(gpu.device), {
      ...tiny,
      halfWeights: true,
      decoderKv: [256],
    });
    // The decoder's fused key | value weight is f32 in any model.
    expect(Object.keys(plan.matmul)).toEqual([
      ...matmulShapes(tiny).map(([K, N, , norm]) => matmulKey(K, N, 'f16', norm)),
      '64x256:norm',
    ]);
    const f32: KernelPlan = { ...plan, matmul: { [matmulKey(64, 192, 'f32', true)]: everyBucket('tall') } };
    expect(matmulBuckets(f32, 64, 192, 'f16', true)).toEqual(everyBucket('register')); // an f32 entry does not serve f16 weights
    expect(matmulBuckets(plan, 64, 192, 'f16', true)).toBe(plan.matmul['64x192:f16:norm']);
    expect(matmulBuckets(plan, 64, 64, 'f16')).toBe(plan.matmul['64x64:f16']); // a matmul without a LayerNorm prologue: its own entry
  });

  it('a plan of another shape (an older version, a damaged store) is not a plan', () => {
    const good = { matmul: { '64x64': everyBucket('wide') }, attention: everyBucket('thread') };
    expect(isPlan(good)).toBe(true);
    expect(
      isPlan({ matmul: { large: 'tiled', small: 'splitk' }, attention: { large: 'flash', small: 'thread' } }),
    ).toBe(false);
    expect(isPlan({ ...good, attention: ['thread'] })).toBe(false);
    expect(isPlan({ ...good, matmul: { '64x64': everyBucket('fast') } })).toBe(false);
    expect(isPlan({ ...good, matmul: null })).toBe(false);
    expect(isPlan(null)).toBe(false);
  });

  it('the plan is remembered per adapter (and in localStorage in a browser)', async () => {
    const gpu = await testGpu();
    await forgetPlans(gpu.adapter);
    const key = planKey(gpu.adapter);
    expect(key).toContain(`v${VARIANT_SET_VERSION}`);
    expect(key).toContain(`${gpu.adapter.vendor}/${gpu.adapter.architecture}/${gpu.adapter.description}`);
    if (typeof window !== 'undefined')
      window.localStorage.setItem(
        key,
        JSON.stringify({ matmul: { large: 'tiled', small: 'splitk' }, attention: { large: 'flash', small: 'thread' } }),
      );
    // Nothing (or, in a browser, a plan of the older shape) remembered: measured.
    const first = await kernelPlan(gpu, new KernelCache(gpu.device), tiny);
    expect(isPlan(first)).toBe(true);
    if (typeof window !== 'undefined') expect(JSON.parse(window.localStorage.getItem(key) ?? 'null')).toEqual(first);
    const t0 = performance.now();
    const again = await kernelPlan(gpu, new KernelCache(gpu.device), tiny);
    expect(again).toEqual(first);
    // Recalled, not measured: no pipeline is compiled or timed.
    expect(performance.now() - t0).toBeLessThan(50);
    // Another model's weight shapes are measured and added to this adapter's plan.
    const other = await kernelPlan(gpu, new KernelCache(gpu.device), { ...tiny, D: 32 });
    expect(Object.keys(other.matmul)).toEqual([
      ...new Set([
        ...Object.keys(first.matmul),
        ...matmulShapes({ ...tiny, D: 32 }).map((shape) => matmulKey(...shape)),
      ]),
    ]);
    for (const [k, buckets] of Object.entries(first.matmul)) expect(other.matmul[k]).toEqual(buckets);
    const mixed = await kernelPlan(gpu, new KernelCache(gpu.device), tiny, { attention: 'flash' });
    expect(mixed).toEqual({ matmul: other.matmul, attention: everyBucket('flash') });
  });

  it('IndexedDB keeps plans where there is no localStorage (Web Workers); without IndexedDB nothing is stored', async () => {
    const key = 'pgm-webgpu.kernel-plan.test';
    const plan = { matmul: { '64x64': everyBucket('splitk') }, attention: everyBucket('thread') };
    await idbPlans.set(key, plan);
    if (typeof indexedDB === 'undefined') {
      expect(await idbPlans.get(key)).toBeUndefined();
      return;
    }
    expect(await idbPlans.get(key)).toEqual(plan);
    await idbPlans.delete(key);
    expect(await idbPlans.get(key)).toBeUndefined();
  });
});
