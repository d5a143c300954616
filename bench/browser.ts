/**
 * The bench page in Chromium, for bench/chromium.ts and bench/full-size.ts: bench/index.html
 * served by Vite, opened in Debian's Chromium (CHROMIUM_PATH, default /usr/bin/chromium) with
 * WebGPU enabled, on the adapter PGM_WEBGPU_ADAPTER names (default swiftshader; '' on a machine
 * with a GPU, to benchmark the GPU).
 */
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright';
import { createServer } from 'vite';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface BenchPage {
  page: Page;
  close(): Promise<void>;
}

/** `allow`: folders outside the repository the page may read, as `/@fs/<absolute path>`. */
export async function openBenchPage(options: { adapter?: string; allow?: string[] } = {}): Promise<BenchPage> {
  const adapter = options.adapter ?? process.env.PGM_WEBGPU_ADAPTER ?? 'swiftshader';
  const args = [
    '--no-sandbox',
    '--headless',
    '--enable-unsafe-webgpu',
    // Unquantized timestamp queries (Chromium rounds them to 100 us otherwise).
    '--enable-webgpu-developer-features',
    ...(adapter ? [`--use-webgpu-adapter=${adapter}`] : []),
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ];
  // No HMR, no file watching, no dependency discovery: any of them can reload the page mid-run.
  const server = await createServer({
    root: ROOT,
    configFile: false,
    publicDir: false,
    logLevel: 'warn',
    optimizeDeps: { noDiscovery: true, include: [] },
    // Cross-origin isolation, which onnxruntime-web's wasm threads (SharedArrayBuffer) need.
    server: {
      host: '127.0.0.1',
      port: 0,
      open: false,
      hmr: false,
      watch: null,
      headers: { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' },
      ...(options.allow && { fs: { allow: [ROOT, ...options.allow] } }),
    },
  });
  await server.listen();
  const address = server.httpServer?.address();
  if (!address || typeof address === 'string') throw new Error('bench: the Vite server has no port');
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args });
    const page = await browser.newPage();
    page.on('console', (msg) => console.error(msg.text()));
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    // Generous: Vite transforms the page's modules on first request, on a machine that may be busy.
    await page.goto(`http://127.0.0.1:${address.port}/bench/index.html`, { timeout: 120_000 });
    await page.waitForFunction(() => typeof window.pgmBench === 'function', undefined, { timeout: 120_000 });
    const opened = browser;
    return {
      page,
      close: async () => {
        await opened.close();
        await server.close();
      },
    };
  } catch (e) {
    await browser?.close();
    await server.close();
    throw e;
  }
}
