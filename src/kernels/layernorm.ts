import { shader } from '../gpu/shader.js';
import type { Dispatch } from '../gpu/kernel.js';
import { ceilDiv, paramsBuffer, rowsOf, type Rows, type Workspace } from './workspace.js';

const source = shader('layernorm.wgsl');

export interface LayerNormArgs {
  label: string;
  rows: Rows;
  D: number;
  x: GPUBuffer;
  weight: GPUBuffer;
  out: GPUBuffer;
  /** Affine LayerNorm bias. */
  bias?: GPUBuffer;
  /** adaLN modulation: shift and scale as float offsets into the modulation buffer. */
  modulate?: { modulation: GPUBuffer; shiftOffset: number; scaleOffset: number };
}

/** out = LN(x) * weight [+ bias] [* (1 + scale) + shift], per valid row. */
export async function layerNormDispatch(ws: Workspace, a: LayerNormArgs): Promise<Dispatch> {
  const kernel = await ws.kernels.get({
    shader: source,
    bindings: ['uniform', 'read', 'uniform', 'read', 'read', 'write', 'read', 'read'],
    defines: { BIAS: a.bias !== undefined, MODULATE: a.modulate !== undefined },
  });
  const params = paramsBuffer(ws, a.label, [a.D, a.rows, a.modulate?.shiftOffset ?? 0, a.modulate?.scaleOffset ?? 0]);
  const bindGroup = kernel.bind(a.label, [ws.dims, ws.lengths, params, a.x, a.weight, a.out, a.bias ?? ws.unused, a.modulate?.modulation ?? ws.unused]);
  return { kernel, bindGroup, grid: () => [ceilDiv(rowsOf(ws, a.rows), 64), ws.shape.batch, 1] };
}
