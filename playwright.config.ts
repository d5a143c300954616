import { defineConfig } from '@playwright/test';
import { BASE_ARGS, CHROMIUM, WEBGPU_ARGS } from './tests/demo/browser.js';

/**
 * The demo's end-to-end tests (tests/demo/*.spec.ts) in Debian's Chromium; never a browser
 * downloaded by Playwright. On machines without a GPU, WebGPU runs on SwiftShader (the CPU).
 */

export default defineConfig({
  testDir: 'tests/demo',
  testMatch: '*.spec.ts',
  globalSetup: './tests/demo/global-setup.ts',
  // One browser at a time: SwiftShader already uses every core.
  workers: 1,
  fullyParallel: false,
  timeout: 120_000,
  expect: { timeout: 60_000 },
  reporter: [['list']],
  outputDir: 'test-results/demo',
  use: {
    browserName: 'chromium',
    viewport: { width: 1180, height: 900 },
    launchOptions: { executablePath: CHROMIUM, args: [...BASE_ARGS, ...WEBGPU_ARGS] },
  },
});
