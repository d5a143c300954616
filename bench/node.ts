/**
 * `npm run bench:node [-- --quick | --owt | --kv N]`: the suite in Node through the `webgpu`
 * package, on the adapter PGM_WEBGPU_ADAPTER names (llvmpipe or swiftshader; default: see
 * src/node.ts). `--kv N`: instead, the speed of bench/kv-settings.ts's encoder settings (N seeds
 * each), written to bench/results/kv-speed-node-<adapter>.json.
 */
import { createEngine, requestNodeGpu } from '../src/node.js';
import { kvSpeed } from './kv-settings.js';
import { runSuite } from './suite.js';
import { adapterName, finish, finishKv, parseKv, parseMode } from './write.js';

const kvSamples = parseKv(process.argv.slice(2));
const mode = parseMode(kvSamples ? [] : process.argv.slice(2));
const ctx = await requestNodeGpu();
try {
  if (kvSamples) {
    const engine = await createEngine({ gpu: ctx, maxBatch: 1 });
    const speed = await kvSpeed(engine, kvSamples, 64, (line) => console.error(line));
    engine.dispose();
    finishKv(
      speed,
      `node-${adapterName(ctx.adapter)}`,
      `PGM_WEBGPU_ADAPTER=${process.env.PGM_WEBGPU_ADAPTER ?? ''} npm run bench:node -- --kv ${kvSamples}`,
    );
  } else {
    finish(await runSuite(ctx, { mode, runtime: 'node', log: (line) => console.error(line) }));
  }
} finally {
  ctx.device.destroy();
}
