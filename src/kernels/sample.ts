import { shader } from '../gpu/shader.js';
import type { Dispatch } from '../gpu/kernel.js';
import type { GpuTensor } from '../gpu/tensor.js';
import { paramsBuffer, rowsOf, Rows, type Workspace } from './workspace.js';

const source = shader('sample.wgsl');

/** Per-step sampling settings, written to the sampler's uniform before each step. */
export interface SampleSettings {
  step: number;
  temperature: number;
  topP: number;
  greedy: boolean;
  /** MDLM: probability that a masked position is revealed this step. */
  pReveal: number;
  /** PGM: append the drawn tokens to the clean set on the GPU. */
  append: boolean;
}

export interface SampleArgs {
  arch: 'pgm' | 'mdlm';
  V: number;
  maskId: number;
  /** [batch, R, V]: a window of R rows per sequence at a time. */
  logits: GpuTensor;
  /** How many windows of R rows sequences of L rows take. */
  windows: number;
  seeds: GPUBuffer; // u32 [batch]
  queryPositions: GPUBuffer;
  cleanTokens: GPUBuffer;
  cleanPositions: GPUBuffer;
  drawn: GPUBuffer; // [batch, maxRows] x (token, probability bits)
}

export interface Sampler {
  /** Per window w: sample rows wR .. wR+R-1 of each sequence from the logits buffer. */
  windows: Dispatch[];
  /** Write this step's settings (one small queue write). */
  set(settings: SampleSettings): void;
}

/** The GPU sampler: one workgroup per row of logits, window by window. */
export async function createSampler(ws: Workspace, a: SampleArgs): Promise<Sampler> {
  const kernel = await ws.kernels.get({
    shader: source,
    defines: { PGM: a.arch === 'pgm' },
  });
  const rows = a.arch === 'pgm' ? Rows.Query : Rows.Clean;
  const params = paramsBuffer(ws, 'sample', [a.V, a.maskId, 0, 0, 0, 0, 0, 0]);
  const data = new ArrayBuffer(32);
  const u32 = new Uint32Array(data);
  const f32 = new Float32Array(data);
  const R = a.logits.shape[1];
  return {
    windows: Array.from({ length: a.windows }, (_, w) => {
      const window = paramsBuffer(ws, `sample window ${w}`, [w * R, R]);
      return {
        kernel,
        bindGroup: kernel.bind('sample', [ws.dims, ws.lengths, params, a.logits.buffer, a.seeds, a.queryPositions, a.cleanTokens, a.cleanPositions, a.drawn, window]),
        grid: () => [Math.min(Math.max(rowsOf(ws, rows) - w * R, 0), R), ws.shape.batch, 1],
      };
    }),
    set(s: SampleSettings) {
      u32[0] = a.V;
      u32[1] = a.maskId;
      u32[2] = s.step;
      u32[3] = s.greedy ? 1 : 0;
      f32[4] = s.greedy ? 1 : s.temperature;
      f32[5] = s.topP;
      f32[6] = s.pReveal;
      u32[7] = s.append ? 1 : 0;
      ws.device.queue.writeBuffer(params, 0, data);
    },
  };
}
