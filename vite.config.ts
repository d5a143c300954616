import { cp, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const ROOT = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = 'dist-demo';
const ASSETS_DIR = 'assets';

/**
 * The built demo is a static site: `dist-demo/demo/` (the page), `dist-demo/assets/` (its
 * scripts), and next to them the manifest the page lists and its models: `weights-manifest.json`
 * and `models/`.
 */
function siteFiles(): Plugin {
  return {
    name: 'pgm-demo-site-files',
    apply: 'build',
    async closeBundle() {
      const out = join(ROOT, OUT_DIR);
      for (const item of ['weights-manifest.json', 'models']) {
        const from = join(ROOT, item);
        if (await stat(from).catch(() => undefined)) await cp(from, join(out, item), { recursive: true });
      }
      await writeFile(join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=demo/"><a href="demo/">pgm-webgpu demo</a>\n');
    },
  };
}

/** `npm run demo` prints the server's root URL: send it to the demo page. */
function rootToDemo(): Plugin {
  const redirect = (req: { url?: string }, res: { statusCode: number; setHeader(k: string, v: string): void; end(): void }, next: () => void) => {
    if (req.url !== '/' && req.url !== '/index.html') return next();
    res.statusCode = 302;
    res.setHeader('Location', '/demo/');
    res.end();
  };
  return {
    name: 'pgm-demo-root',
    configureServer: (server) => void server.middlewares.use(redirect),
    configurePreviewServer: (server) => void server.middlewares.use(redirect),
  };
}

// root = the project, so that weights-manifest.json and models/ are reachable at the same
// relative URLs from /demo/ in development and in the built site.
export default defineConfig({
  root: '.',
  base: './',
  publicDir: false,
  plugins: [siteFiles(), rootToDemo()],
  server: { open: '/demo/' },
  worker: { format: 'es' },
  build: {
    outDir: OUT_DIR,
    assetsDir: ASSETS_DIR,
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: 'demo/index.html' },
  },
});
