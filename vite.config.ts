import { defineConfig } from 'vite';

// The demo lives in demo/; the project root is served so that weights-manifest.json and
// models/ are reachable at the same URLs in development and in the built site.
export default defineConfig({
  root: '.',
  publicDir: false,
  server: { open: '/demo/' },
  build: {
    outDir: 'dist-demo',
    emptyOutDir: true,
    target: 'es2022',
    rollupOptions: { input: 'demo/index.html' },
  },
});
