/**
 * GPU timing for the bench: each recorded dispatch replayed in its own compute pass with
 * `timestampWrites` (WebGPU has no timestamps inside a pass), or, without 'timestamp-query',
 * the wall-clock time of an awaited submit per dispatch.
 */
import type { GpuContext } from '../src/gpu/context.js';
import { timePasses, type Dispatch, type Kernel } from '../src/gpu/kernel.js';

/** A dispatch as it ran: its pipeline, bind group and grid at that moment (variants resolved). */
export interface RecordedDispatch {
  kernel: Kernel;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
}

/** Snapshot a dispatch for the current batch shape. */
export function record(dispatch: Dispatch, grid = dispatch.grid()): RecordedDispatch {
  return { kernel: dispatch.kernel, bindGroup: dispatch.bindGroup, grid };
}

export const hasTimestamps = (ctx: GpuContext): boolean => ctx.device.features.has('timestamp-query');

/** Milliseconds of GPU time of each dispatch, best of `reps` replays. */
export async function timeDispatches(ctx: GpuContext, recorded: readonly RecordedDispatch[], reps: number): Promise<number[]> {
  const best = recorded.map(() => Infinity);
  for (let r = 0; r < reps; r++) {
    const ms = hasTimestamps(ctx) ? await timestamped(ctx, recorded) : await wallClock(ctx, recorded);
    ms.forEach((t, i) => (best[i] = Math.min(best[i], t)));
  }
  return best;
}

function encode(pass: GPUComputePassEncoder, { kernel, bindGroup, grid }: RecordedDispatch): void {
  pass.setPipeline(kernel.pipeline);
  pass.setBindGroup(0, bindGroup);
  pass.dispatchWorkgroups(...grid);
}

const MAX_QUERIES = 4096;

async function timestamped(ctx: GpuContext, recorded: readonly RecordedDispatch[]): Promise<number[]> {
  const out: number[] = [];
  for (let start = 0; start < recorded.length; start += MAX_QUERIES / 2) {
    const chunk = recorded.slice(start, start + MAX_QUERIES / 2);
    const ms = await timePasses(ctx.device, chunk.length, (encoder, writes) =>
      chunk.forEach((d, i) => {
        const pass = encoder.beginComputePass({ label: d.bindGroup.label, timestampWrites: writes(i) });
        encode(pass, d);
        pass.end();
      }),
    );
    out.push(...ms);
  }
  return out;
}

async function wallClock(ctx: GpuContext, recorded: readonly RecordedDispatch[]): Promise<number[]> {
  const { device } = ctx;
  const out: number[] = [];
  for (const d of recorded) {
    const encoder = device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    encode(pass, d);
    pass.end();
    const t0 = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    out.push(performance.now() - t0);
  }
  return out;
}
