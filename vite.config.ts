import { defineConfig } from 'vite';

export default defineConfig({
  root: 'demo',
  publicDir: false,
  server: { fs: { allow: ['..'] } },
  build: { outDir: '../dist-demo', emptyOutDir: true, target: 'es2022' },
});
