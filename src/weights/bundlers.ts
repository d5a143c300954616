/**
 * What the packaged models (src/weights/packaged.ts) need from the app's bundler, and what to say
 * when they did not arrive. Vite and webpack 5 emit each file named by a literal
 * `new URL(..., import.meta.url)` by themselves; Parcel 2 and Rollup 4 need one line of
 * configuration each, which these messages (and the README) give.
 */
import { fail } from '../errors.js';

/** The one-line fix for Parcel 2, which turns a JSON file that a `new URL()` names into a script. */
export const PARCEL_FIX =
  '.parcelrc: { "extends": "@parcel/config-default", "transformers": { "**/pgm-webgpu/models/**": ["@parcel/transformer-raw"] } }';

/** The one-line fix for Rollup 4, which copies no file that a `new URL()` names. */
export const ROLLUP_FIX =
  'npm install -D @web/rollup-plugin-import-meta-assets, then plugins: [nodeResolve(), importMetaAssets()] in rollup.config.js';

/**
 * `url`, where the app's bundler put the packaged file `file`; a typed error when the bundler
 * made a script of it (Parcel does so with JSON: the page would fetch JavaScript for config.json).
 */
export function emittedFile(file: string, url: URL): URL {
  if (/\.m?js$/.test(url.pathname) && !/\.m?js$/.test(file)) {
    fail(
      'io',
      `the packaged ${file} reached this app as a script (${url.pathname.split('/').pop()}): Parcel 2 turns JSON into JavaScript; keep the package's model files as they are with this ${PARCEL_FIX}`,
    );
  }
  return url;
}

/** What to do when the packaged model `id` cannot be fetched from where the bundler should have put it. */
export function notEmittedHint(id: string): string {
  if (typeof process !== 'undefined' && typeof process.versions?.node === 'string' && typeof document === 'undefined') {
    return "this is the browser entry, which fetches the packaged model, and Node's fetch reads no files: in Node.js, import { createEngine } from 'pgm-webgpu/node'";
  }
  return `the packaged model ${id} was not emitted with this app (Vite and webpack 5 do it by themselves). Rollup 4: ${ROLLUP_FIX}. esbuild and other bundlers that copy no files: host models/${id}/ of the package yourself and pass its URL as \`model\``;
}
