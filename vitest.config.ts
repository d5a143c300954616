import { defineConfig } from 'vitest/config';
import { playwright } from '@vitest/browser-playwright';

// Flags that give headless Chromium a WebGPU adapter on machines without a GPU
// (SwiftShader); on a machine with a GPU, drop --use-webgpu-adapter to test it instead.
const chromiumArgs = [
  '--no-sandbox',
  '--headless',
  '--enable-unsafe-webgpu',
  `--use-webgpu-adapter=${process.env.PGM_WEBGPU_ADAPTER ?? 'swiftshader'}`,
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
          // Each worker gets its own Dawn instance; two at most on a 2-core machine.
          maxWorkers: 2,
          // The Node project runs first, then the browser project: both are CPU-bound here.
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          // Only the WebGPU tests run in Chromium; converters, vocab and CLI are Node-side.
          include: ['tests/gpu/**/*.test.ts', 'tests/**/*.browser-only.test.ts'],
          sequence: { groupOrder: 1 },
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
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
