import { shader } from '../gpu/shader.js';
import type { Dispatch } from '../gpu/kernel.js';
import { ceilDiv, paramsBuffer, type Workspace } from './workspace.js';

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
  D: number;
  encoderOut: GPUBuffer; // [batch, L, D]
  base: GPUBuffer; // [D]
  queryPositions: GPUBuffer;
  sinus: GPUBuffer; // [L, D]
  stat: GPUBuffer; // [batch, D]
  out: GPUBuffer; // [batch, L, D]
}

/**
 * The group-swap query vectors q0 (before pre_query_norm): base embedding, plus the
 * sinusoid of the query position, plus the mean or logsumexp of the encoder output.
 */
export async function queryInitDispatches(ws: Workspace, a: QueryInitArgs): Promise<Dispatch[]> {
  const params = paramsBuffer(ws, 'group_swap.q0', [a.D]);
  const dispatches: Dispatch[] = [];
  if (a.statistic) {
    const pool = await ws.kernels.get({
      shader: poolShader,
      bindings: ['uniform', 'read', 'uniform', 'read', 'write'],
      defines: { LOGSUMEXP: a.statistic === 'logsumexp' },
    });
    dispatches.push({
      kernel: pool,
      bindGroup: pool.bind('group_swap.pool', [ws.dims, ws.lengths, params, a.encoderOut, a.stat]),
      grid: () => [ceilDiv(a.D, 64), ws.shape.batch, 1],
    });
  }
  const init = await ws.kernels.get({
    shader: queryInitShader,
    bindings: ['uniform', 'read', 'uniform', 'read', 'read', 'read', 'read', 'write'],
    defines: { FREQS: a.freqs, STAT: a.statistic !== undefined },
  });
  dispatches.push({
    kernel: init,
    bindGroup: init.bind('group_swap.q0', [ws.dims, ws.lengths, params, a.base, a.queryPositions, a.sinus, a.stat, a.out]),
    grid: () => [ceilDiv(a.D, 64), ws.shape.maxQuery, ws.shape.batch],
  });
  return dispatches;
}
