import { encodeDispatches, type KernelCache } from '../gpu/kernel.js';
import { GpuMemory } from '../gpu/memory.js';
import { napWhile } from '../gpu/nap.js';
import { gpuTensor, type GpuTensor } from '../gpu/tensor.js';
import { matmulDispatch, rotaryTable } from '../kernels/matmul.js';
import { createWorkspace, Rows, setBatchShape } from '../kernels/workspace.js';
import { computeModulations, type Modulations } from './conditioning.js';
import { headDim, type ModelConfig } from '../weights/config.js';
import { layerNormBefore } from './fusion.js';
import type { RowBlock } from './gpu-weights.js';
import type { WeightMap } from '../weights/host-tensor.js';

/**
 * The constant table every pass reads (ForwardContext.constants), one f32 buffer: every
 * adaLN_modulation(c) and each LayerNorm's gain and shift (conditioning.ts), the rotary table,
 * and for each matmul after a LayerNorm its weight's colGain | colShift (kernels/matmul.ts,
 * `NormPrologue`).
 */
export interface ConstantTable {
  tensor: GpuTensor;
  mod: Modulations;
  /** Where the rotary table (`rotaryTable`) starts. */
  ropeOffset: number;
  /** By matmul weight name, per block of its rows (gpu-weights.ts): where its colGain | colShift start. */
  normColumns: Map<string, number[]>;
}

/**
 * Build and upload the table for the blocks `prefixes` from the host-only tensors `host`;
 * `matmuls`: the weight names of the model's matmuls (its own and fusion.ts's). colGain |
 * colShift = [gain; shift] @ w^T is computed by the matmul kernel itself from each block of
 * rows of the weight (`blocks(name)`: as stored, f16 or not; a weight over one storage binding,
 * the output layer at V = 50258, has several, each its own columns), in one submit, and copied
 * into the table before this returns.
 */
export async function loadConstants(
  memory: GpuMemory,
  kernels: KernelCache,
  config: ModelConfig,
  host: WeightMap,
  prefixes: readonly string[],
  matmuls: readonly string[],
  blocks: (name: string) => readonly RowBlock[],
): Promise<ConstantTable> {
  const { device } = memory;
  const mod = computeModulations(config, host, prefixes);
  const rope = rotaryTable(config.length, headDim(config));
  const normColumns = new Map<string, number[]>();
  let size = mod.values.length + rope.length;
  const normed = matmuls.flatMap((name) => {
    const norm = mod.norms.get(layerNormBefore(name) ?? '');
    if (!norm) return [];
    const offsets: number[] = [];
    normColumns.set(name, offsets);
    return blocks(name).map(({ tensor: weight }) => {
      const at = size;
      offsets.push(at);
      size += 2 * weight.shape[0];
      return { weight, norm, at };
    });
  });
  const values = new Float32Array(size);
  values.set(mod.values);
  values.set(rope, mod.values.length);
  const tensor = gpuTensor('constants', memory.upload('constants', values), [size]);

  const scratch = new GpuMemory(device, memory.naps);
  try {
    const ws = createWorkspace(scratch, kernels, 2, 1);
    setBatchShape(ws, [2], []);
    const encoder = device.createCommandEncoder({ label: 'LayerNorm columns' });
    for (const { weight, norm, at } of normed) {
      const [N, K] = weight.shape;
      const name = weight.name;
      const terms = new Float32Array(2 * K);
      terms.set(mod.values.subarray(norm.gain, norm.gain + K));
      terms.set(mod.values.subarray(norm.shift, norm.shift + K), K);
      const x = gpuTensor(`${name} gain | shift`, scratch.upload(`${name} gain | shift`, terms), [1, 2, K]);
      const out = gpuTensor(
        `${name} columns`,
        scratch.create(`${name} columns`, 8 * N, GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC),
        [1, 2, N],
      );
      const pass = encoder.beginComputePass({ label: name });
      encodeDispatches(pass, [
        await matmulDispatch(ws, { label: `${name} columns`, rows: Rows.Clean, x, weight, out, variant: 'register' }),
      ]);
      pass.end();
      encoder.copyBufferToBuffer(out.buffer, 0, tensor.buffer, 4 * at, 8 * N);
    }
    device.queue.submit([encoder.finish()]);
    const done = device.queue.onSubmittedWorkDone();
    await (memory.naps ? napWhile(done) : done);
  } finally {
    scratch.releaseAll();
  }
  return { tensor, mod, ropeOffset: mod.values.length, normColumns };
}
