import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';

// The adapter of the node and browser projects: SwiftShader, unless PGM_WEBGPU_ADAPTER says
// otherwise (empty: the machine's GPU). node-lavapipe runs the GPU and CLI tests again on
// lavapipe (Mesa 25, which scripts/setup.sh unpacks into .lavapipe/; Node only, as Chromium
// blocklists CPU adapters). tests/gpu/adapter.test.ts checks each got the one it asked for.
const adapter = process.env.PGM_WEBGPU_ADAPTER ?? 'swiftshader';

// Flags that give headless Chromium a WebGPU adapter on machines without a GPU
// (SwiftShader); on a machine with a GPU, drop --use-webgpu-adapter to test it instead.
const chromiumArgs = [
  '--no-sandbox',
  '--headless',
  '--enable-unsafe-webgpu',
  `--use-webgpu-adapter=${adapter}`,
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

export default defineConfig({
  test: {
    // WebGPU on SwiftShader runs on the CPU: generous per-test limits, the suite stays small.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          environment: 'node',
          include: ['tests/**/*.test.ts'],
          exclude: ['tests/**/*.browser-only.test.ts', 'tests/consumers/**'],
          env: { PGM_WEBGPU_ADAPTER: adapter },
          provide: { webgpuAdapter: adapter },
          // Each worker gets its own Dawn instance; two at most on a 2-core machine.
          maxWorkers: 2,
          // The Node projects run first, then the browser project: all are CPU-bound here.
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          // The kernels again on a second implementation: a kernel right on one and wrong on
          // the other fails here. Only the tests that reach the GPU from Node.
          name: 'node-lavapipe',
          environment: 'node',
          include: ['tests/gpu/**/*.test.ts', 'tests/cli/**/*.test.ts'],
          exclude: ['tests/**/*.browser-only.test.ts'],
          env: { PGM_WEBGPU_ADAPTER: 'llvmpipe' },
          provide: { webgpuAdapter: 'llvmpipe' },
          // One worker: lavapipe runs each dispatch on a thread per core, and two such processes
          // on 2 busy cores took 16 minutes instead of 2 (LP_NUM_THREADS=1 would be as fast,
          // but would run workgroups one at a time and hide races between them).
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          // Only the WebGPU tests run in Chromium; converters, vocab and CLI are Node-side.
          include: ['tests/gpu/**/*.test.ts', 'tests/**/*.browser-only.test.ts'],
          provide: { webgpuAdapter: adapter },
          sequence: { groupOrder: 2 },
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({
              launchOptions: { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: chromiumArgs },
            }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
      {
        extends: true,
        test: {
          // The packed package in fresh projects (npm pack, installs, bundlers, Chromium): last,
          // alone, since it builds and serves several apps.
          name: 'consumers',
          environment: 'node',
          include: ['tests/consumers/**/*.test.ts'],
          sequence: { groupOrder: 3 },
        },
      },
    ],
  },
});
