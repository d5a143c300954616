/** How the demo tests launch Debian's Chromium (its package ships SwiftShader's Vulkan driver); the pages come from 127.0.0.1 (server.ts), a secure origin: the only kind where Chromium exposes navigator.gpu. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const BASE_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];
/** What gives headless Chromium a WebGPU adapter; SwiftShader on machines without a GPU. */
export const WEBGPU_ARGS = [
  '--enable-unsafe-webgpu',
  `--use-webgpu-adapter=${process.env.PGM_WEBGPU_ADAPTER ?? 'swiftshader'}`,
];

/** The demo page on the test models (global-setup.ts serves both). */
export const demoUrl = (query = ''): string =>
  `${process.env.PGM_DEMO_URL}/demo/?manifest=/test-models/weights-manifest.json${query}`;
