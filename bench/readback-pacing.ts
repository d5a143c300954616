/**
 * `npx tsx bench/readback-pacing.ts` (Node; PGM_WEBGPU_ADAPTER picks the adapter): what pacing
 * the readbacks (src/gpu/pacer.ts) buys. Four generations at the bench's L128 shape, 16 steps,
 * stepped in turns as the bench's rows are: the PGM and the MDLM with paced readbacks (as
 * `pgm-webgpu/node` runs them) and with Dawn's busy-polling wait. PACING_REPS (default 3) rounds
 * of the four; the sums, and the pacer's counts.
 */
import { GpuModel } from '../src/model/gpu-model.js';
import { requestNodeGpu } from '../src/node.js';
import { randomWeights } from '../src/reference/random.js';
import { generateInTurns, modelConfig, smallShape } from './suite.js';

const REPS = Number(process.env.PACING_REPS ?? 3);
const STEPS = 16;

const ctx = await requestNodeGpu();
const shape = smallShape(128);
const load = (arch: 'pgm' | 'mdlm', paced: boolean) => {
  const config = modelConfig(arch, shape);
  return GpuModel.load({ ...ctx, paceReadbacks: paced }, config, randomWeights(config, 1), { maxBatch: 1 });
};
const models = [await load('pgm', true), await load('mdlm', true), await load('pgm', false), await load('mdlm', false)];
try {
  await generateInTurns(models, 1, STEPS); // warm-up: pipelines, and the pacers' first waits
  const ms = models.map(() => 0);
  for (let r = 0; r < REPS; r++) (await generateInTurns(models, 1, STEPS)).forEach((g, i) => (ms[i] += g.ms));
  const [pacedPgm, pacedMdlm, spinPgm, spinMdlm] = ms;
  const counts = models[0].ws.memory.pacer!.counts;
  console.log(`${ctx.adapter.description}: L128, ${STEPS} steps, ${REPS} rounds of four generations in turns`);
  console.log(`PGM: paced ${pacedPgm.toFixed(0)} ms, busy-polling ${spinPgm.toFixed(0)} ms, ${(spinPgm / pacedPgm).toFixed(2)}x`);
  console.log(`MDLM: paced ${pacedMdlm.toFixed(0)} ms, busy-polling ${spinMdlm.toFixed(0)} ms, ${(spinMdlm / pacedMdlm).toFixed(2)}x`);
  console.log(`PGM speed-up over the MDLM: paced ${(pacedMdlm / pacedPgm).toFixed(2)}x, busy-polling ${(spinMdlm / spinPgm).toFixed(2)}x`);
  console.log(`PGM pacer: ${counts.waits} waits, ${counts.slept} slept first, ${counts.overslept} overslept`);
} finally {
  for (const m of models) m.dispose();
  ctx.device.destroy();
}
