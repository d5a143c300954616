/**
 * `npx tsx bench/step-costs.ts` (Node; PGM_WEBGPU_ADAPTER picks the adapter): where a PGM step's
 * time goes on this adapter, at the bench's L128 model (random weights), 65 clean tokens and 8
 * queries (step 8 of 16). Times, each the mean of 20:
 * - a step one at a time (`sampleStep`: submit, GPU work, readback) and steps queued back to
 *   back (`startStep`, what the GPU alone sustains);
 * - the step's own dispatches replayed in one pass: all of them, the matmuls only, the others
 *   (attention, embedding, query init), and the sampler alone (wall clock of the submit).
 * STEP_COSTS_REPS sets the 20 (tests run it with 2).
 */
import { encodeDispatch, observeDispatches } from '../src/gpu/kernel.js';
import { napWhile } from '../src/gpu/nap.js';
import { GpuModel } from '../src/model/gpu-model.js';
import { requestNodeGpu } from '../src/node.js';
import { randomWeights } from '../src/reference/random.js';
import { modelConfig, smallShape } from './suite.js';
import { record, type RecordedDispatch } from './timing.js';

const REPS = Number(process.env.STEP_COSTS_REPS ?? 20);
const [CLEAN, QUERIES] = [65, 8];

const ctx = await requestNodeGpu();
const config = modelConfig('pgm', smallShape(128));
const model = await GpuModel.load(ctx, config, randomWeights(config, 1), { maxBatch: 1 });
try {
  model.writeClean(
    0,
    0,
    Array.from({ length: CLEAN }, (_, i) => (7 * i) % config.vocabSize),
    Array.from({ length: CLEAN }, (_, i) => i),
  );
  model.writeQueries(
    0,
    Array.from({ length: QUERIES }, (_, i) => CLEAN + i),
  );
  model.writeSeeds([1]);
  model.setLengths([CLEAN], [QUERIES]);
  // append: false keeps the clean set as it is, so every step below does the same work.
  const settings = { step: 8, temperature: 1, topP: 1, greedy: false, pReveal: 1, append: false };
  const recorded: RecordedDispatch[] = [];
  observeDispatches((dispatch, grid) => recorded.push(record(dispatch, grid)));
  try {
    await model.sampleStep(settings); // also the warm-up
  } finally {
    observeDispatches(undefined);
  }
  const mean = async (run: () => Promise<unknown>) => {
    const t0 = performance.now();
    await run();
    return (performance.now() - t0) / REPS;
  };
  const replay = (dispatches: readonly RecordedDispatch[]) =>
    mean(async () => {
      const encoder = ctx.device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      for (let r = 0; r < REPS; r++) for (const d of dispatches) encodeDispatch(pass, d, d.grid);
      pass.end();
      ctx.device.queue.submit([encoder.finish()]);
      await napWhile(ctx.device.queue.onSubmittedWorkDone());
    });
  const isSampler = (d: RecordedDispatch) => d.kernel.name === 'sample.wgsl';
  const forward = recorded.filter((d) => !isSampler(d));
  const rows: [string, () => Promise<number>][] = [
    [
      'step, one at a time',
      () =>
        mean(async () => {
          for (let r = 0; r < REPS; r++) await model.sampleStep(settings);
        }),
    ],
    [
      'steps, queued',
      () =>
        mean(async () => {
          const drawn = [];
          for (let r = 0; r < REPS; r++) drawn.push((await model.startStep(settings)).result);
          await Promise.all(drawn);
        }),
    ],
    [`forward pass (${forward.length} dispatches)`, () => replay(forward)],
    ['matmuls only', () => replay(forward.filter((d) => d.kernel.name.startsWith('matmul')))],
    ['without the matmuls', () => replay(forward.filter((d) => !d.kernel.name.startsWith('matmul')))],
    ['sampler', () => replay(recorded.filter(isSampler))],
  ];
  console.log(
    `${ctx.adapter.description}: PGM L128, ${CLEAN} clean tokens, ${QUERIES} queries, mean of ${REPS}, two rounds`,
  );
  for (const [label, time] of rows)
    console.log(`${label}: ${(await time()).toFixed(2)} ms, ${(await time()).toFixed(2)} ms`);
} finally {
  model.dispose();
  ctx.device.destroy();
}
