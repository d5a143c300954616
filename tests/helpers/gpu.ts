import { requestGpu, type GpuContext } from '../../src/gpu/context.js';
import { encodeDispatches, type Dispatch } from '../../src/gpu/kernel.js';
import type { GpuMemory } from '../../src/gpu/memory.js';

const inNode = typeof process !== 'undefined' && !!process.versions?.node && typeof window === 'undefined';

let context: Promise<GpuContext> | undefined;

/**
 * The WebGPU device for this test worker: navigator.gpu in Chromium, the `webgpu` package
 * in Node. Throws (fails the test) when there is no adapter: GPU tests never skip.
 */
export function testGpu(): Promise<GpuContext> {
  context ??= inNode ? import('../../src/node.js').then((m) => m.requestNodeGpu()) : requestGpu();
  return context;
}

let defaultLimits: Promise<GpuContext> | undefined;

/**
 * A second device for this test worker, with WebGPU's default limits (128 MiB per storage
 * binding, 256 MiB per buffer), as many phones and integrated GPUs give.
 */
export function testGpuWithDefaultLimits(): Promise<GpuContext> {
  defaultLimits ??= inNode
    ? import('../../src/node.js').then((m) => m.requestNodeGpu({ limits: 'default' }))
    : requestGpu({ limits: 'default' });
  return defaultLimits;
}

export const runtime = inNode ? 'node' : 'chromium';

/**
 * The readback of the kernel tests: build the dispatches inside a validation error scope (a
 * validation error fails the test), encode them into one compute pass, copy `outputs` to
 * staging buffers in the same encoder, submit once, and return the bytes of each output.
 */
export async function runAndRead(
  memory: GpuMemory,
  label: string,
  build: () => Promise<readonly Dispatch[]>,
  outputs: readonly GPUBuffer[],
): Promise<ArrayBuffer[]> {
  const device = memory.device;
  device.pushErrorScope('validation');
  const dispatches = await build();
  const encoder = device.createCommandEncoder({ label });
  const pass = encoder.beginComputePass();
  encodeDispatches(pass, dispatches);
  pass.end();
  const staging = outputs.map((out) => {
    const s = memory.create('readback', out.size, GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST);
    encoder.copyBufferToBuffer(out, 0, s, 0, out.size);
    return s;
  });
  try {
    device.queue.submit([encoder.finish()]);
    const error = await device.popErrorScope();
    if (error) throw new Error(`WebGPU validation error: ${error.message}`);
    await Promise.all(staging.map((s) => s.mapAsync(GPUMapMode.READ)));
    return staging.map((s) => s.getMappedRange().slice(0));
  } finally {
    staging.forEach((s) => memory.release(s));
  }
}

/** Largest |a - b| and whether a and b pick the same argmax in every row of width `cols`. */
export function compareRows(
  a: Float32Array,
  b: Float32Array,
  cols: number,
): { maxAbs: number; argmaxMismatches: number } {
  if (a.length !== b.length) throw new Error(`length mismatch: ${a.length} vs ${b.length}`);
  let maxAbs = 0;
  let argmaxMismatches = 0;
  for (let r = 0; r < a.length / cols; r++) {
    let ia = 0;
    let ib = 0;
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c;
      const d = Math.abs(a[i] - b[i]);
      if (!(d <= maxAbs)) maxAbs = Number.isNaN(d) ? Infinity : d;
      if (a[i] > a[r * cols + ia]) ia = c;
      if (b[i] > b[r * cols + ib]) ib = c;
    }
    if (ia !== ib) argmaxMismatches++;
  }
  return { maxAbs, argmaxMismatches };
}
