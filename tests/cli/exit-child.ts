/**
 * A script that ends while a generation is running, in the way named by its argument: `end`
 * (awaits the result), `exit` (process.exit), `throw` (an uncaught error), `SIGINT`, `SIGTERM`
 * (sent to itself). Run by tests/cli/generate.test.ts, which checks how the process ended.
 */
import { createEngine } from '../../src/node.js';

const how = process.argv[2];
const engine = await createEngine({ model: 'pgm-small' });
const run = engine.generate({ length: 64, steps: 8, seed: 1 });
let steps = 0;
for await (const step of run) {
  if (++steps < 2) continue;
  if (how === 'exit') process.exit(0);
  if (how === 'throw') throw new Error(`thrown at step ${step.step}`);
  if (how === 'SIGINT' || how === 'SIGTERM') process.kill(process.pid, how);
}
await run;
