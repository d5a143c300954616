import { defineConfig } from 'vite';

// The demo: `npm run demo` serves the project (`/` is index.html, which sends the browser on to
// /demo/); `npm run build:demo` writes the same pages to dist-demo/, with their scripts and the
// packaged models (emitted by Vite from src/weights/packaged.ts's `new URL(...)`s) in assets/.
export default defineConfig({
  root: '.',
  base: './',
  publicDir: false,
  server: { open: '/demo/' },
  worker: { format: 'es' },
  build: {
    outDir: 'dist-demo',
    assetsDir: 'assets',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: ['index.html', 'demo/index.html'] },
  },
});
