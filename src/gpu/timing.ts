/**
 * How long dispatches take on the GPU: the one timing path of the autotuner (tuning/tuning.ts)
 * and the bench. WebGPU has no timestamps inside a compute pass, so each timed dispatch gets a
 * pass of its own with `timestampWrites`; without 'timestamp-query', the wall time of an
 * awaited submit per dispatch.
 */
import { encodeDispatch, type Dispatch, type Kernel } from './kernel.js';
import { napWhile } from './nap.js';

/** A dispatch as it ran: its pipeline, bind group and grid at that moment (variants resolved). */
export interface RecordedDispatch {
  kernel: Kernel;
  bindGroup: GPUBindGroup;
  grid: [number, number, number];
}

/** Snapshot a dispatch for the current batch shape. */
export const record = (dispatch: Dispatch, grid = dispatch.grid()): RecordedDispatch => ({
  kernel: dispatch.kernel,
  bindGroup: dispatch.bindGroup,
  grid,
});

export interface TimedRun extends RecordedDispatch {
  /** Dispatches in the timed pass (default 1): coarse timestamps need a longer pass. */
  reps?: number;
  /** One untimed dispatch first (pipeline and caches warm). */
  warmUp?: boolean;
}

/** Timestamp queries per query set: two per pass. */
const MAX_QUERIES = 4096;

/** Milliseconds per dispatch of each run. */
export async function timeRuns(device: GPUDevice, runs: readonly TimedRun[]): Promise<number[]> {
  const out: number[] = [];
  if (!device.features.has('timestamp-query')) {
    for (const run of runs) {
      const submit = async (reps: number) => {
        const encoder = device.createCommandEncoder({ label: 'timing' });
        const pass = encoder.beginComputePass();
        encodeDispatch(pass, run, run.grid, reps);
        pass.end();
        device.queue.submit([encoder.finish()]);
        await napWhile(device.queue.onSubmittedWorkDone());
      };
      if (run.warmUp) await submit(1);
      const t0 = performance.now();
      await submit(run.reps ?? 1);
      out.push((performance.now() - t0) / (run.reps ?? 1));
    }
    return out;
  }
  for (let start = 0; start < runs.length; start += MAX_QUERIES / 2) {
    const chunk = runs.slice(start, start + MAX_QUERIES / 2);
    const ms = await timePasses(device, chunk.length, (encoder, writes) =>
      chunk.forEach((run, i) => {
        if (run.warmUp) {
          const warm = encoder.beginComputePass();
          encodeDispatch(warm, run, run.grid);
          warm.end();
        }
        const pass = encoder.beginComputePass({ label: run.bindGroup.label, timestampWrites: writes(i) });
        encodeDispatch(pass, run, run.grid, run.reps);
        pass.end();
      }),
    );
    out.push(...ms.map((t, i) => t / (chunk[i].reps ?? 1)));
  }
  return out;
}

/**
 * Milliseconds of GPU time of each of `passes` compute passes, from timestamp queries, in one
 * submit: `encode` begins pass i with `timestampWrites: writes(i)`.
 */
async function timePasses(
  device: GPUDevice,
  passes: number,
  encode: (encoder: GPUCommandEncoder, writes: (i: number) => GPUComputePassTimestampWrites) => void,
): Promise<number[]> {
  const count = 2 * passes;
  const querySet = device.createQuerySet({ label: 'timestamps', type: 'timestamp', count });
  const resolved = device.createBuffer({
    label: 'timestamps.resolved',
    size: 8 * count,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const staging = device.createBuffer({
    label: 'timestamps.staging',
    size: 8 * count,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  try {
    const encoder = device.createCommandEncoder({ label: 'timestamps' });
    encode(encoder, (i) => ({ querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 }));
    encoder.resolveQuerySet(querySet, 0, count, resolved, 0);
    encoder.copyBufferToBuffer(resolved, 0, staging, 0, 8 * count);
    device.queue.submit([encoder.finish()]);
    await napWhile(staging.mapAsync(GPUMapMode.READ));
    const ns = new BigInt64Array(staging.getMappedRange().slice(0));
    staging.unmap();
    return Array.from({ length: passes }, (_, i) => Math.max(0, Number(ns[2 * i + 1] - ns[2 * i])) / 1e6);
  } finally {
    querySet.destroy();
    resolved.destroy();
    staging.destroy();
  }
}
