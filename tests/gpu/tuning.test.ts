/**
 * Kernel plans (src/kernels/tuning.ts): forced variants, the measurement on this adapter, and
 * remembering the plan per adapter. Correctness of each variant is in kernels.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { PgmError } from '../../src/errors.js';
import { KernelCache } from '../../src/gpu/kernel.js';
import { ATTENTION_VARIANTS, MATMUL_VARIANTS, VARIANT_SET_VERSION, type ModelShapes } from '../../src/kernels/plan.js';
import { forgetPlans, idbPlans, planKey } from '../../src/kernels/plan-store.js';
import { kernelPlan, measurePlan } from '../../src/kernels/tuning.js';
import { runtime, testGpu } from '../helpers/gpu.js';

const tiny: ModelShapes = { D: 64, F: 256, V: 300, L: 48, nHeads: 4, headDim: 16 };

describe(`kernel plan (${runtime})`, () => {
  it('forced variants are used as given, at every row count', async () => {
    const gpu = await testGpu();
    const plan = await kernelPlan(gpu, new KernelCache(gpu.device), tiny, { matmul: 'splitk', attention: 'flash' });
    expect(plan).toEqual({ matmul: { large: 'splitk', small: 'splitk' }, attention: { large: 'flash', small: 'flash' } });
  });

  it('an unknown variant is an option error naming the choices', async () => {
    const gpu = await testGpu();
    const err = await kernelPlan(gpu, new KernelCache(gpu.device), tiny, { matmul: 'fast' as never }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PgmError);
    expect((err as PgmError).message).toMatch(/GpuModelOptions\.matmul .*register, wide, tall, tiled, splitk.*"fast"/);
  });

  it('the measurement picks a known variant for each half of the plan', async () => {
    const gpu = await testGpu();
    const { plan, measurements } = await measurePlan(gpu.device, new KernelCache(gpu.device), tiny);
    expect(MATMUL_VARIANTS).toContain(plan.matmul.large);
    expect(MATMUL_VARIANTS).toContain(plan.matmul.small);
    expect(ATTENTION_VARIANTS).toContain(plan.attention.large);
    expect(ATTENTION_VARIANTS).toContain(plan.attention.small);
    for (const m of measurements) expect(m.ms, `${m.kernel} ${m.variant} [${m.shape}]`).toBeGreaterThanOrEqual(0);
  });

  it('the plan is remembered per adapter (and in localStorage in a browser)', async () => {
    const gpu = await testGpu();
    await forgetPlans(gpu.adapter);
    const key = planKey(gpu.adapter);
    expect(key).toContain(`v${VARIANT_SET_VERSION}`);
    expect(key).toContain(`${gpu.adapter.vendor}/${gpu.adapter.architecture}/${gpu.adapter.description}`);
    const first = await kernelPlan(gpu, new KernelCache(gpu.device), tiny);
    if (typeof window !== 'undefined') expect(JSON.parse(window.localStorage.getItem(key) ?? 'null')).toEqual(first);
    const t0 = performance.now();
    const again = await kernelPlan(gpu, new KernelCache(gpu.device), { ...tiny, D: 32 });
    expect(again).toEqual(first);
    // Recalled, not measured: no pipeline is compiled or timed.
    expect(performance.now() - t0).toBeLessThan(50);
    const mixed = await kernelPlan(gpu, new KernelCache(gpu.device), tiny, { attention: 'flash' });
    expect(mixed).toEqual({ matmul: first.matmul, attention: { large: 'flash', small: 'flash' } });
  });

  it('IndexedDB keeps plans where there is no localStorage (Web Workers); without IndexedDB nothing is stored', async () => {
    const key = 'pgm-webgpu.kernel-plan.test';
    const plan = { matmul: { large: 'tiled', small: 'splitk' }, attention: { large: 'flash', small: 'thread' } };
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
