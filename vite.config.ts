import { cp, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const ROOT = dirname(fileURLToPath(import.meta.url));
const OUT_DIR = 'dist-demo';
const ASSETS_DIR = 'assets';

/**
 * The built demo is a static site: `dist-demo/demo/` (the page), `dist-demo/assets/` (its
 * scripts), and next to them what the engine fetches at run time: `weights-manifest.json`,
 * `models/` and `shaders/`.
 */
function siteFiles(): Plugin {
  return {
    name: 'pgm-demo-site-files',
    apply: 'build',
    async closeBundle() {
      const out = join(ROOT, OUT_DIR);
      for (const item of ['weights-manifest.json', 'models', 'shaders']) {
        const from = join(ROOT, item);
        if (await stat(from).catch(() => undefined)) await cp(from, join(out, item), { recursive: true });
      }
      await writeFile(join(out, 'index.html'), '<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0; url=demo/"><a href="demo/">pgm-webgpu demo</a>\n');
    },
  };
}

/**
 * Shaders are fetched as files because their `#include "common.wgsl"` resolves relative to
 * the including file; bundled as hashed assets they would lose their neighbours. So in the
 * build, each `new URL('../../shaders/x.wgsl', import.meta.url)` is rewritten to point from
 * the chunk in `assets/` to the copied `shaders/` folder (in development the original URL
 * already reaches the project's `shaders/`). The engine runs in the worker bundle.
 */
function shaderFiles(): Plugin {
  // new URL('../../shaders/x.wgsl', import.meta.url), also as a template literal (`../../shaders/${file}`)
  const shaderUrl = /new URL\((['"`])((?:\.\.\/)+)shaders\/((?:(?!\1).)*)\1,\s*import\.meta\.url\)/g;
  return {
    name: 'pgm-demo-shader-files',
    apply: 'build',
    transform(code, id) {
      if (!id.startsWith(join(ROOT, 'src')) || !code.includes('shaders/')) return null;
      return code.replace(shaderUrl, (match: string, quote: string, up: string, rest: string) => {
        const folder = relative(ROOT, resolve(dirname(id), up, 'shaders'));
        if (folder !== 'shaders') return match;
        // String(...) keeps Vite's own new URL(..., import.meta.url) asset handling away from it.
        return `new URL(${quote}../shaders/${rest}${quote}, String(import.meta.url))`;
      });
    },
  };
}

// root = the project, so that weights-manifest.json, models/ and shaders/ are reachable at the
// same relative URLs from /demo/ in development and in the built site.
export default defineConfig({
  root: '.',
  base: './',
  publicDir: false,
  plugins: [siteFiles(), shaderFiles()],
  server: { open: '/demo/' },
  worker: { format: 'es', plugins: () => [shaderFiles()] },
  build: {
    outDir: OUT_DIR,
    assetsDir: ASSETS_DIR,
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: 'demo/index.html' },
  },
});
