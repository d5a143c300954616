import type { Dispatch } from '../gpu/kernel.js';
import { shader } from '../gpu/shader.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { activationShape, batchBindings, ceilDiv, paramsBuffer, type Workspace } from './workspace.js';

const poolShader = shader('pool.wgsl');
const queryInitShader = shader('query_init.wgsl');

/** sinus(p) = concat(cos(p / den), sin(p / den)), den_i = 10000^(2i/D), for p < L: [L, D]. */
export function sinusTable(L: number, D: number): Float32Array {
  const half = D / 2;
  const table = new Float32Array(L * D);
  for (let i = 0; i < half; i++) {
    const den = Math.fround(10000 ** Math.fround((2 * i) / D));
    for (let p = 0; p < L; p++) {
      const angle = Math.fround(p / den);
      table[p * D + i] = Math.cos(angle);
      table[p * D + half + i] = Math.sin(angle);
    }
  }
  return table;
}

export interface QueryInitArgs {
  /** Add the sinusoid of the query position. */
  freqs: boolean;
  /** Add this statistic of the encoder output over the clean tokens (into `stat` first). */
  statistic?: 'mean' | 'logsumexp';
  encoderOut: GpuTensor; // [batch, L, D]
  base: GpuTensor; // [1, D]
  queryPositions: GpuTensor; // u32 [batch, L]
  sinus: GpuTensor; // [L, D]
  stat: GpuTensor; // [batch, D]
  out: GpuTensor; // [batch, L, D]
}

/**
 * The group-swap query vectors q0 (before pre_query_norm): base embedding, plus the
 * sinusoid of the query position, plus the mean or logsumexp of the encoder output.
 */
export async function queryInitDispatches(ws: Workspace, a: QueryInitArgs): Promise<Dispatch[]> {
  const D = cols(a.out);
  const op = 'group_swap.q0';
  expectTensor(op, 'encoderOut', a.encoderOut, { shape: activationShape(ws, D), dense: true });
  expectTensor(op, 'base', a.base, { shape: [1, D] });
  expectTensor(op, 'queryPositions', a.queryPositions, {
    shape: [ws.maxBatch, ws.seqStride],
    dtype: 'u32',
    dense: true,
  });
  expectTensor(op, 'sinus', a.sinus, { shape: [ws.seqStride, D], dense: true });
  expectTensor(op, 'stat', a.stat, { shape: [ws.maxBatch, D], dense: true });
  expectTensor(op, 'out', a.out, { shape: activationShape(ws, D), dense: true });
  const dispatches: Dispatch[] = [];
  if (a.statistic) {
    const pool = await ws.kernels.get({
      shader: poolShader,
      defines: { LOGSUMEXP: a.statistic === 'logsumexp' },
    });
    dispatches.push({
      kernel: pool,
      bindGroup: pool.bind('group_swap.pool', {
        ...batchBindings(ws),
        p: paramsBuffer(ws, pool, 'group_swap.pool', { D }),
        x: a.encoderOut.buffer,
        stat: a.stat.buffer,
      }),
      grid: () => [ceilDiv(D, pool.workgroupSize[0]), ws.shape.batch, 1],
    });
  }
  const init = await ws.kernels.get({
    shader: queryInitShader,
    defines: { FREQS: a.freqs, STAT: a.statistic !== undefined },
  });
  dispatches.push({
    kernel: init,
    bindGroup: init.bind('group_swap.q0', {
      ...batchBindings(ws),
      p: paramsBuffer(ws, init, 'group_swap.q0', { D }),
      base: a.base.buffer,
      queryPositions: a.queryPositions.buffer,
      sinus: a.sinus.buffer,
      stat: a.stat.buffer,
      q0: a.out.buffer,
    }),
    grid: () => [ceilDiv(D, init.workgroupSize[0]), ws.shape.maxQuery, ws.shape.batch],
  });
  return dispatches;
}
