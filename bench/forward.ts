/**
 * One forward pass at the paper's OpenWebText shapes (D=768, H=12, C=128, V=50258; PGM 6/6,
 * MDLM 12 blocks), random weights, model length L: PGM with L/2 clean tokens and L/2 queries,
 * MDLM over all L positions. Time = submit to logits on the host, after one warm-up run
 * (skipped for L > 256, where one pass takes minutes on a CPU adapter and compiles are noise).
 */
import type { GpuContext } from '../src/gpu/context.js';
import type { ModelConfig } from '../src/weights/config.js';
import { GpuModel } from '../src/model/gpu-model.js';
import { randomWeights, tinyConfig } from '../src/reference/random.js';

export interface ForwardTiming {
  arch: 'pgm' | 'mdlm';
  L: number;
  clean: number;
  queries: number;
  ms: number;
}

const owt = (arch: 'pgm' | 'mdlm', L: number): ModelConfig =>
  tinyConfig(arch, {
    vocabSize: 50258,
    hiddenSize: 768,
    nHeads: 12,
    condDim: 128,
    mlpDim: 3072,
    length: L,
    encoderBlocks: arch === 'pgm' ? 6 : 0,
    decoderBlocks: arch === 'pgm' ? 6 : 0,
    nBlocks: arch === 'mdlm' ? 12 : 0,
  });

const now = (): number => performance.now();

export async function forwardTimings(
  ctx: GpuContext,
  lengths: readonly number[],
  log: (line: string) => void,
): Promise<ForwardTiming[]> {
  const out: ForwardTiming[] = [];
  for (const arch of ['pgm', 'mdlm'] as const) {
    for (const L of lengths) {
      const config = owt(arch, L);
      const model = await GpuModel.load(ctx, config, randomWeights(config, 1), { maxBatch: 1 });
      try {
        const n = arch === 'pgm' ? L / 2 : L;
        const tokens = Array.from({ length: n }, (_, i) => (i * 7919) % 50256);
        const run = () =>
          arch === 'pgm'
            ? model.pgmLogits([
                {
                  tokens,
                  positions: tokens.map((_, i) => 2 * i),
                  queries: Array.from({ length: L / 2 }, (_, i) => 2 * i + 1),
                },
              ])
            : model.mdlmLogits([{ tokens }]);
        if (L <= 256) await run();
        const t = now();
        await run();
        const ms = now() - t;
        out.push({ arch, L, clean: n, queries: arch === 'pgm' ? L / 2 : L, ms });
        log(`${arch} L=${L}: ${ms.toFixed(0)} ms`);
      } finally {
        model.dispose();
      }
    }
  }
  return out;
}
