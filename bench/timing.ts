/** GPU timing for the bench: src/gpu/timing.ts, best of several replays. */
import type { GpuContext } from '../src/gpu/context.js';
import { timeRuns, type RecordedDispatch } from '../src/gpu/timing.js';

export { record, type RecordedDispatch } from '../src/gpu/timing.js';

export const hasTimestamps = (ctx: GpuContext): boolean => ctx.device.features.has('timestamp-query');

/** Milliseconds of GPU time of each dispatch, best of `reps` replays. */
export async function timeDispatches(
  ctx: GpuContext,
  recorded: readonly RecordedDispatch[],
  reps: number,
): Promise<number[]> {
  const best = recorded.map(() => Infinity);
  for (let r = 0; r < reps; r++)
    (await timeRuns(ctx.device, recorded)).forEach((t, i) => (best[i] = Math.min(best[i], t)));
  return best;
}
