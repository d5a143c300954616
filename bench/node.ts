/** `npm run bench:node [-- --quick | --owt]`: the suite in Node through the `webgpu` package, on the adapter PGM_WEBGPU_ADAPTER names (llvmpipe or swiftshader; default: see src/node.ts). */
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
