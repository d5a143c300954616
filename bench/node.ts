/** `npm run bench:node [-- --quick | --owt]`: the suite in Node through the `webgpu` package. */
import { requestNodeGpu } from '../src/node.js';
import { runSuite } from './suite.js';
import { finish, parseMode } from './write.js';

const mode = parseMode(process.argv.slice(2));
const ctx = await requestNodeGpu();
try {
  finish(await runSuite(ctx, { mode, runtime: 'node', log: (line) => console.error(line) }));
} finally {
  ctx.device.destroy();
}
