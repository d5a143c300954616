/**
 * Which adapter a Node process gets (src/node.ts): PGM_WEBGPU_ADAPTER names one of the CPU
 * adapters, a name that is not there is a PgmError saying what is, and without the variable a
 * machine with no GPU device prefers lavapipe when scripts/setup.sh installed it. Each case is
 * a fresh process, since a process chooses once.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const LAVAPIPE_ICD = join(ROOT, '.lavapipe', 'lvp_icd.json');
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** The adapter a fresh process gets, or the error it gets instead (code and message). */
function adapterOf(env: Record<string, string | undefined>): Promise<{
  adapter?: { vendor: string; description: string };
  error?: { name: string; code: string; message: string };
  stderr: string;
}> {
  const script = `
    const { requestNodeGpu } = await import('./src/node.ts');
    try {
      const ctx = await requestNodeGpu();
      console.log(JSON.stringify({ adapter: ctx.adapter }));
      ctx.device.destroy();
    } catch (e) {
      console.log(JSON.stringify({ error: { name: e.name, code: e.code, message: e.message } }));
    }`;
  const childEnv = { ...process.env, ...env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete childEnv[k];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => void (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => void (stderr += chunk));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`child exited with ${code}: ${stderr}`));
      else resolve({ ...JSON.parse(stdout), stderr });
    });
  });
}

describe('the Node adapter', () => {
  it('PGM_WEBGPU_ADAPTER picks lavapipe or SwiftShader', async () => {
    const lavapipe = await adapterOf({ PGM_WEBGPU_ADAPTER: 'llvmpipe', VK_ICD_FILENAMES: undefined });
    expect(lavapipe.adapter).toMatchObject({ vendor: 'mesa', description: expect.stringMatching(/^llvmpipe: Mesa/) });
    const swiftshader = await adapterOf({ PGM_WEBGPU_ADAPTER: 'swiftshader', VK_ICD_FILENAMES: undefined });
    expect(swiftshader.adapter).toMatchObject({ vendor: 'google', description: expect.stringMatching(/^SwiftShader/) });
    // Only the chosen driver is loaded: lavapipe's Dawn warnings stay out of a SwiftShader process.
    expect(swiftshader.stderr).toBe('');
  });

  it('without PGM_WEBGPU_ADAPTER, a machine without a GPU device prefers lavapipe when it is installed', async () => {
    const dri = existsSync('/dev/dri') && readdirSync('/dev/dri').some((f) => f.startsWith('renderD'));
    const gpu = dri || existsSync('/dev/nvidia0');
    const { adapter, error } = await adapterOf({ PGM_WEBGPU_ADAPTER: undefined, VK_ICD_FILENAMES: undefined });
    expect(error).toBeUndefined();
    if (gpu) expect(adapter).toMatchObject({ isFallbackAdapter: false });
    else expect(adapter!.vendor).toBe(existsSync(LAVAPIPE_ICD) ? 'mesa' : 'google');
  });

  it('an adapter that is not there is a PgmError naming the ones that are, never another adapter', async () => {
    const unknown = await adapterOf({ PGM_WEBGPU_ADAPTER: 'lavapipe' });
    expect(unknown.error).toMatchObject({
      name: 'PgmError',
      code: 'webgpu',
      message: expect.stringMatching(/^PGM_WEBGPU_ADAPTER=lavapipe names no adapter: use llvmpipe .* or swiftshader/),
    });
    // Dawn's own list when the caller's VK_ICD_FILENAMES lacks the adapter asked for.
    const absent = await adapterOf({ PGM_WEBGPU_ADAPTER: 'llvmpipe', VK_ICD_FILENAMES: SWIFTSHADER_ICD });
    expect(absent.error).toMatchObject({
      name: 'PgmError',
      code: 'webgpu',
      message: expect.stringMatching(/PGM_WEBGPU_ADAPTER=llvmpipe .*Available adapters: .*SwiftShader/),
    });
    const other = await adapterOf({ PGM_WEBGPU_ADAPTER: 'swiftshader', VK_ICD_FILENAMES: LAVAPIPE_ICD });
    expect(other.error).toMatchObject({
      name: 'PgmError',
      code: 'webgpu',
      message: expect.stringMatching(/PGM_WEBGPU_ADAPTER=swiftshader .*Available adapters: .*llvmpipe/),
    });
  });
});
