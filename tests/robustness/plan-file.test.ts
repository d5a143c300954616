/**
 * Node's kernel-plan file ($PGM_WEBGPU_CACHE/kernel-plans.json) as a hostile or careless cache
 * directory leaves it: a link planted where the temporary used to go, a 2 MiB file, entries of
 * other versions or that are not plans. (A plan naming a variant the device cannot run:
 * tests/gpu/tuning.test.ts.)
 */
import { lstat, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { everyBucket, VARIANT_SET_VERSION, type KernelPlan } from '../../src/kernels/plan.js';
import { forgetPlans, planKey, recall, remember } from '../../src/tuning/plan-store.js';
import { getNodeGpu } from '../../src/node.js';

let dir: string;
let file: string;
const adapter = {
  vendor: 'test',
  architecture: 'plan-file',
  description: 'no device',
  isFallbackAdapter: false,
  features: [],
  maxStorageBufferBindingSize: 0,
  maxBufferSize: 0,
  maxComputeWorkgroupStorageSize: 0,
  maxComputeInvocationsPerWorkgroup: 0,
};
const plan: KernelPlan = { matmul: { '64x64': everyBucket('wide') }, attention: everyBucket('thread') };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pgm-plans-'));
  file = join(dir, 'kernel-plans.json');
  process.env.PGM_WEBGPU_CACHE = dir;
  await getNodeGpu(); // uses the plan file of PGM_WEBGPU_CACHE from now on
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('the kernel-plan file', () => {
  it('is written through a temporary created exclusively under a fresh name: links planted at the old name are not followed', async () => {
    const victim = join(dir, 'victim.txt');
    await writeFile(victim, 'precious');
    await symlink(victim, `${file}.${process.pid}.tmp`);
    await remember(planKey(adapter), plan);
    expect(await readFile(victim, 'utf8')).toBe('precious');
    expect((await lstat(file)).isFile()).toBe(true);
    expect((await readdir(dir)).sort()).toEqual([
      'kernel-plans.json',
      `kernel-plans.json.${process.pid}.tmp`,
      'victim.txt',
    ]);
    await rm(`${file}.${process.pid}.tmp`);
  });

  it('keeps only plans of this variant set, written compact; a file over 1 MiB is read as empty and rewritten at once', async () => {
    const key = planKey(adapter);
    await writeFile(
      file,
      JSON.stringify(
        {
          'pgm-webgpu.kernel-plan.v1:old/adapter': plan,
          'not a plan key': 1,
          [`${key}/other`]: { matmul: 'x' },
          [key]: plan,
        },
        null,
        2,
      ),
    );
    await remember(`${key}/new`, plan);
    const kept = await readFile(file, 'utf8');
    expect(JSON.parse(kept)).toEqual({ [key]: plan, [`${key}/new`]: plan });
    expect(kept).not.toContain('\n');
    expect(
      Object.keys(JSON.parse(kept)).every((k) => k.startsWith(`pgm-webgpu.kernel-plan.v${VARIANT_SET_VERSION}:`)),
    ).toBe(true);

    await forgetPlans(); // this process's copies (and the file's): the next recall reads the file
    await writeFile(file, JSON.stringify({ [key]: plan, padding: 'x'.repeat(2 ** 21) }));
    const start = performance.now();
    expect(await recall(key)).toBeUndefined();
    await remember(key, plan);
    expect(performance.now() - start).toBeLessThan(1000);
    expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ [key]: plan });
  });
});
