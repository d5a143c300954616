/**
 * Each test project runs on the adapter it asked for (vitest.config.ts provides the name:
 * swiftshader, llvmpipe, or empty for the machine's GPU), so a silent fallback to another
 * adapter fails here instead of testing the same implementation twice.
 */
import { describe, expect, inject, it } from 'vitest';
import { runtime, testGpu } from '../helpers/gpu.js';

declare module 'vitest' {
  export interface ProvidedContext {
    webgpuAdapter: string;
  }
}

/** What requestGpu reports for each adapter a project may name (Chromium leaves the description empty). */
const EXPECTED: Record<string, { vendor: string; architecture: string; description: RegExp }> = {
  swiftshader: {
    vendor: 'google',
    architecture: 'swiftshader',
    description: runtime === 'node' ? /^SwiftShader/ : /^$/,
  },
  llvmpipe: { vendor: 'mesa', architecture: 'software', description: /^llvmpipe: Mesa (\d+)\./ },
};

describe('the adapter', () => {
  it('is the one the project asked for', async () => {
    const wanted = inject('webgpuAdapter');
    if (runtime === 'node') expect(process.env.PGM_WEBGPU_ADAPTER ?? '').toBe(wanted);
    const { adapter } = await testGpu();
    const seen = { vendor: adapter.vendor, architecture: adapter.architecture, description: adapter.description };
    if (wanted === '') {
      expect(adapter.isFallbackAdapter, `a GPU was asked for, got ${JSON.stringify(seen)}`).toBe(false);
      return;
    }
    const expected = EXPECTED[wanted];
    expect(expected, `unknown adapter name ${wanted}`).toBeDefined();
    expect(seen).toMatchObject({
      vendor: expected.vendor,
      architecture: expected.architecture,
      description: expect.stringMatching(expected.description),
    });
    if (wanted === 'llvmpipe') {
      // Debian 12's own Mesa (22.3) is rejected by Dawn: this must be the Mesa 25 of .lavapipe/, with its features.
      expect(Number(expected.description.exec(adapter.description)![1])).toBeGreaterThanOrEqual(25);
      expect(adapter.features).toEqual(expect.arrayContaining(['shader-f16', 'subgroups', 'timestamp-query']));
    }
  });
});
