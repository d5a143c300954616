/** `npx tsx bench/forward-node.ts [L ...]` (default 64 1024): forward-pass latency at the OWT shapes in Node. */
import { requestNodeGpu } from '../src/node.js';
import { forwardTimings } from './forward.js';

const lengths = process.argv.slice(2).map(Number);
const ctx = await requestNodeGpu();
try {
  console.log(
    JSON.stringify(await forwardTimings(ctx, lengths.length ? lengths : [64, 1024], (l) => console.error(l))),
  );
} finally {
  ctx.device.destroy();
}
