import { shader } from '../gpu/shader.js';
import type { Dispatch } from '../gpu/kernel.js';
import { cols, expectTensor, type GpuTensor } from '../gpu/tensor.js';
import { batchBindings, paramsBuffer, rowsOf, Rows, type Workspace } from './workspace.js';

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
  maskId: number;
  /** [batch, R, V]: a window of R rows per sequence at a time. */
  logits: GpuTensor;
  /** How many windows of R rows sequences of L rows take. */
  windows: number;
  seeds: GpuTensor; // u32 [batch]
  /** u32 [batch, L] each: read (PGM: the queries' positions), and appended to (the clean set). */
  queryPositions: GpuTensor;
  cleanTokens: GpuTensor;
  cleanPositions: GpuTensor;
  /** u32 [batch * L, 2]: per step, [batch, maxRows] pairs (token or -1, probability bits), packed. */
  drawn: GpuTensor;
}

export interface Sampler {
  /** Per window w: sample rows wR .. wR+R-1 of each sequence from the logits buffer. */
  windows: Dispatch[];
  /** Write this step's settings (one small queue write). */
  set(settings: SampleSettings): void;
}

/** The GPU sampler: one workgroup per row of logits, window by window. */
export async function createSampler(ws: Workspace, a: SampleArgs): Promise<Sampler> {
  const op = 'sample';
  const V = cols(a.logits);
  const sequences = { shape: [ws.maxBatch, ws.seqStride], dtype: 'u32', dense: true } as const;
  expectTensor(op, 'logits', a.logits, { shape: [ws.maxBatch, undefined, V], dense: true });
  expectTensor(op, 'seeds', a.seeds, { shape: [ws.maxBatch], dtype: 'u32' });
  for (const role of ['queryPositions', 'cleanTokens', 'cleanPositions'] as const)
    expectTensor(op, role, a[role], sequences);
  expectTensor(op, 'drawn', a.drawn, { shape: [ws.maxBatch * ws.seqStride, 2], dtype: 'u32', dense: true });
  const kernel = await ws.kernels.get({
    shader: source,
    defines: { PGM: a.arch === 'pgm' },
  });
  const rows = a.arch === 'pgm' ? Rows.Query : Rows.Clean;
  const settings = (s: SampleSettings) => ({
    V,
    maskId: a.maskId,
    step: s.step,
    greedy: s.greedy ? 1 : 0,
    temperature: s.greedy ? 1 : s.temperature,
    topP: s.topP,
    pReveal: s.pReveal,
    append: s.append ? 1 : 0,
  });
  const p = paramsBuffer(
    ws,
    kernel,
    op,
    settings({ step: 0, temperature: 0, topP: 0, greedy: false, pReveal: 0, append: false }),
  );
  const R = a.logits.shape[1];
  const buffers = {
    ...batchBindings(ws),
    p,
    logits: a.logits.buffer,
    seeds: a.seeds.buffer,
    queryPositions: a.queryPositions.buffer,
    cleanTokens: a.cleanTokens.buffer,
    cleanPositions: a.cleanPositions.buffer,
    drawn: a.drawn.buffer,
  };
  return {
    windows: Array.from({ length: a.windows }, (_, w) => {
      const window = paramsBuffer(ws, kernel, `sample window ${w}`, { first: w * R, rows: R }, 'Window');
      return {
        kernel,
        bindGroup: kernel.bind(op, { ...buffers, window }),
        grid: () => [Math.min(Math.max(rowsOf(ws, rows) - w * R, 0), R), ws.shape.batch, 1],
      };
    }),
    set(s: SampleSettings) {
      ws.device.queue.writeBuffer(p, 0, kernel.pack(settings(s)));
    },
  };
}
