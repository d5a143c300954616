/**
 * `npx tsx bench/busy-wait.ts` (Node; PGM_WEBGPU_ADAPTER picks the adapter): what napping while
 * waiting for the GPU (src/gpu/nap.ts) buys over Dawn's busy-polling wait. Four generations at
 * the bench's L128 shape, 16 steps, stepped in turns as the bench's rows are: the PGM and the
 * MDLM napping (as the engine runs in Node) and busy-polling. BUSY_WAIT_REPS (default 3) rounds
 * of the four, summed.
 */
import { GpuModel } from '../src/model/gpu-model.js';
import { requestNodeGpu } from '../src/node.js';
import { randomWeights } from '../src/reference/random.js';
import { generateInTurns, modelConfig, smallShape } from './suite.js';

const REPS = Number(process.env.BUSY_WAIT_REPS ?? 3);
const STEPS = 16;

const ctx = await requestNodeGpu();
const shape = smallShape(128);
const load = (arch: 'pgm' | 'mdlm', naps: boolean) => {
  const config = modelConfig(arch, shape);
  return GpuModel.load({ ...ctx, napWhileWaiting: naps }, config, randomWeights(config, 1), { maxBatch: 1 });
};
const models = [await load('pgm', true), await load('mdlm', true), await load('pgm', false), await load('mdlm', false)];
try {
  await generateInTurns(models, 1, STEPS); // warm-up: pipelines and kernel plans
  const ms = models.map(() => 0);
  for (let r = 0; r < REPS; r++) (await generateInTurns(models, 1, STEPS)).forEach((g, i) => (ms[i] += g.ms));
  const [napPgm, napMdlm, spinPgm, spinMdlm] = ms;
  console.log(`${ctx.adapter.description}: L128, ${STEPS} steps, ${REPS} rounds of four generations in turns`);
  console.log(
    `PGM: napping ${napPgm.toFixed(0)} ms, busy-polling ${spinPgm.toFixed(0)} ms, ${(spinPgm / napPgm).toFixed(2)}x`,
  );
  console.log(
    `MDLM: napping ${napMdlm.toFixed(0)} ms, busy-polling ${spinMdlm.toFixed(0)} ms, ${(spinMdlm / napMdlm).toFixed(2)}x`,
  );
  console.log(
    `PGM speed-up over the MDLM: napping ${(napMdlm / napPgm).toFixed(2)}x, busy-polling ${(spinMdlm / spinPgm).toFixed(2)}x`,
  );
} finally {
  for (const m of models) m.dispose();
  ctx.device.destroy();
}
