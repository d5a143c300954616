/**
 * A load in its own process, so that its memory can be measured: `node --import tsx
 * load-child.ts <manifest|model> <url> [stallTimeout]` loads a weights manifest's default model
 * or a model directory over HTTP (its weights iterated, which reads the shards) and prints one
 * JSON line: how it ended (the PgmError's code and message, or "loaded"), the resident set
 * before the load and its peak (bytes).
 */
import { loadModelFromManifest, loadModelFromUrl } from '../../src/weights/load.js';

const [kind, url, stall] = process.argv.slice(2);
const stallTimeout = stall === undefined ? undefined : Number(stall);
const before = process.memoryUsage().rss;
let outcome: { code: string; message: string };
try {
  const { weights } = await (kind === 'manifest'
    ? loadModelFromManifest(url, undefined, { stallTimeout })
    : loadModelFromUrl(url, { stallTimeout }));
  for await (const tensor of weights) void tensor; // the shards are read as the weights are
  outcome = { code: 'loaded', message: '' };
} catch (e) {
  outcome = { code: (e as { code?: string }).code ?? 'thrown', message: (e as Error).message };
}
console.log(JSON.stringify({ ...outcome, before, peak: process.resourceUsage().maxRSS * 1024 }));
// Sockets a hostile server keeps open must not keep the process alive.
process.exit(0);
