// The browser entry as bundlers see it (the "browser" condition of package.json's exports): the
// same module as dist/index.js, in a .jsx file because the Vite dev server (5 to 8) pre-bundles
// a dependency only when its entry ends in .js, .mjs, .cjs or .ts. Pre-bundled, the package would
// run from node_modules/.vite/deps/, where its models' `new URL(..., import.meta.url)` point
// nowhere (Vite 5 to 7); left as it is, each module is served from the package and Vite rewrites
// those URLs itself. Every other bundler reads a .jsx file without JSX as plain JavaScript.
export * from '../dist/index.js';
