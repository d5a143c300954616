/**
 * The encoder settings the quality study (bench/quality.ts, in Node) and the Chromium speed run
 * (`npm run bench -- --kv`) compare on the shipped pgm-small, and the loop that generates them:
 * sample i of every setting uses seed i, and the settings take turns per seed (rotating), so
 * that a change in the machine's load reaches them all alike.
 */
import type { Engine } from '../src/engine.js';
import type { GenerateOptions, GenerationResult } from '../src/types.js';

export interface KvSetting {
  name: string;
  encoder: NonNullable<GenerateOptions['encoder']>;
  refresh?: number;
  staleness?: number;
}

export const KV_SETTINGS: readonly KvSetting[] = [
  { name: 'exact', encoder: 'exact' },
  { name: 'incremental, refresh never', encoder: 'incremental' },
  { name: 'incremental, refresh 8', encoder: 'incremental', refresh: 8 },
  { name: 'delayed', encoder: 'delayed' },
  { name: 'adaptive, staleness 0.7', encoder: 'adaptive', staleness: 0.7 },
  { name: 'adaptive, staleness 0.5', encoder: 'adaptive', staleness: 0.5 },
  { name: 'adaptive, staleness 0.3', encoder: 'adaptive', staleness: 0.3 },
];

/** `--quick`: the exact encoder, never refreshing and the default adaptive threshold. */
export const QUICK_KV_SETTINGS: readonly KvSetting[] = KV_SETTINGS.filter((s) =>
  ['exact', 'incremental, refresh never', 'adaptive, staleness 0.3'].includes(s.name),
);

/** A setting's generate options. */
export const kvOptions = (s: KvSetting): Pick<GenerateOptions, 'encoder' | 'refresh' | 'staleness'> => ({
  encoder: s.encoder,
  ...(s.refresh !== undefined && { refresh: s.refresh }),
  ...(s.staleness !== undefined && { staleness: s.staleness }),
});

/**
 * Generate `samples` seeds of each setting at `length` and `steps`, settings in turns per seed,
 * after one warm-up generation of each (pipelines, the KV set's first use, the adapter's
 * clocks); `each` sees every generation with its wall time.
 */
export async function generateSettings(
  engine: Engine,
  settings: readonly KvSetting[],
  o: { samples: number; length: number; steps: number },
  each: (k: number, seed: number, result: GenerationResult, ms: number) => void,
): Promise<void> {
  for (const s of settings)
    await engine.generate({ seed: 0xffffffff, length: o.length, steps: o.steps, ...kvOptions(s) });
  for (let i = 0; i < o.samples; i++) {
    for (let j = 0; j < settings.length; j++) {
      const k = (i + j) % settings.length;
      const t0 = performance.now();
      const result = await engine.generate({ seed: i, length: o.length, steps: o.steps, ...kvOptions(settings[k]) });
      each(k, i, result, performance.now() - t0);
    }
  }
}

/** What `npm run bench -- --kv` measures: each setting's generation times and encoder rows. */
export interface KvSpeed {
  adapter: string;
  length: number;
  steps: number;
  samples: number;
  runs: { setting: string; ms: number[]; encoderRows: number[] }[];
}

/**
 * `samples` seeds of every setting at the engine's model length and `steps`, settings in turns
 * (the speed run of the Chromium page and of `npm run bench:node -- --kv`, on the shipped
 * pgm-small); `log` sees the exact setting's time per seed.
 */
export async function kvSpeed(
  engine: Engine,
  samples: number,
  steps: number,
  log: (line: string) => void,
): Promise<KvSpeed> {
  const length = engine.gpuModel.config.length;
  const runs = KV_SETTINGS.map((s) => ({ setting: s.name, ms: [] as number[], encoderRows: [] as number[] }));
  await generateSettings(engine, KV_SETTINGS, { samples, length, steps }, (k, seed, result, ms) => {
    runs[k].ms.push(ms);
    runs[k].encoderRows.push(result.stats.encoderRows);
    if (k === 0) log(`  seed ${seed}: exact ${ms.toFixed(0)} ms`);
  });
  return { adapter: engine.adapter.description, length, steps, samples, runs };
}

/** A KvSpeed as a Markdown table: mean encoder rows, mean ms per generation, speed-up over the exact setting. */
export function kvSpeedTable(r: KvSpeed): string {
  const mean = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;
  const exact = mean(r.runs[0].ms);
  return [
    '| setting | encoder rows | ms / generation | speed-up |',
    '|---|---:|---:|---:|',
    ...r.runs.map(
      (run) =>
        `| ${run.setting} | ${Math.round(mean(run.encoderRows)).toLocaleString('en-US')} | ${Math.round(mean(run.ms)).toLocaleString('en-US')} | ${(exact / mean(run.ms)).toFixed(2)}x |`,
    ),
  ].join('\n');
}
