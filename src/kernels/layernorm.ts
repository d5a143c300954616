import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { activationShape, ceilDiv, paramsBuffer, rowsOf, type Rows, type Workspace } from './workspace.js';

const source = shader('layernorm.wgsl');

/** adaLN modulation: shift and scale at float offsets of the constant modulation table. */
export interface Modulate {
  modulation: GpuTensor;
  shiftOffset: number;
  scaleOffset: number;
}

export interface LayerNormArgs {
  label: string;
  rows: Rows;
  x: GpuTensor; // [batch, L, D]
  weight: GpuTensor; // [D]
  out: GpuTensor; // [batch, L, D]
  /** Affine LayerNorm bias, [D]. */
  bias?: GpuTensor;
  modulate?: Modulate;
}

/** out = LN(x) * weight [+ bias] [* (1 + scale) + shift], per valid row. */
export async function layerNormDispatch(ws: Workspace, a: LayerNormArgs): Promise<Dispatch> {
  const D = cols(a.x);
  const op = `layernorm ${a.label}`;
  expectTensor(op, 'x', a.x, { shape: activationShape(ws, D), dense: true });
  expectTensor(op, 'weight', a.weight, { shape: [D] });
  expectTensor(op, 'out', a.out, { shape: activationShape(ws, D), dense: true });
  if (a.bias) expectTensor(op, 'bias', a.bias, { shape: [D] });
  const kernel = await ws.kernels.get({
    shader: source,
    defines: { BIAS: a.bias !== undefined, MODULATE: a.modulate !== undefined },
  });
  const params = paramsBuffer(ws, a.label, [D, a.rows, a.modulate?.shiftOffset ?? 0, a.modulate?.scaleOffset ?? 0]);
  const bindGroup = kernel.bind(a.label, [ws.dims, ws.lengths, params, a.x.buffer, a.weight.buffer, a.out.buffer, a.bias?.buffer ?? ws.unused, a.modulate?.modulation.buffer ?? ws.unused]);
  return { kernel, bindGroup, grid: () => [ceilDiv(rowsOf(ws, a.rows), 16), ws.shape.batch, 1] };
}
