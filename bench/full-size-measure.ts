/**
 * The parts of `npm run bench:full` (bench/full-size.ts) that run anywhere: its command line,
 * one loaded model's generations (in a Node child and on the bench page alike), and the
 * Markdown of the results.
 */
import type { Engine } from '../src/engine.js';
import type { EncoderMode } from '../src/sampling/samplers.js';
import { timeGeneration, type GenerationTimes } from './suite.js';

/** What each model generates: a prompt fills the model's length but the last `generate` positions. */
export interface Workload {
  generate: number;
  steps: number;
  /** The KV set's encoder setting (the PGM's second run; the first is exact). */
  kv: Exclude<EncoderMode, 'exact'>;
}

/** Where a model runs: `<runtime>-<adapter>`; gpu: the machine's GPU (no adapter named). */
export const ADAPTERS = [
  'node-llvmpipe',
  'node-swiftshader',
  'chromium-swiftshader',
  'node-gpu',
  'chromium-gpu',
] as const;
export type AdapterId = (typeof ADAPTERS)[number];

export interface FullSizeArgs extends Workload {
  adapters: AdapterId[];
  models: ('pgm' | 'mdlm')[];
  dtype: 'f16' | 'f32';
  /** Where the checkpoints and converted models are kept. */
  cache: string;
  /** Convert again (and measure it) even when the converted model is cached. */
  reconvert: boolean;
}

export const CPU_ADAPTERS: AdapterId[] = ['node-llvmpipe', 'node-swiftshader', 'chromium-swiftshader'];
const KV_SETTINGS = ['incremental', 'delayed', 'adaptive'] as const;

export const FULL_SIZE_USAGE = `usage: npm run bench:full -- [--adapters a,b,...] [--steps N] [--generate N] [--kv SETTING]
                             [--models pgm,mdlm] [--dtype f16|f32] [--cache DIR] [--reconvert]

  --adapters   where to run, comma-separated (default ${CPU_ADAPTERS.join(',')});
               a GPU: node-gpu,chromium-gpu
  --steps      sampling steps (default 4: a step at L1024 takes 8-20 s on lavapipe, 50-130 s
               on SwiftShader; on a GPU 64, one token per step)
  --generate   tokens generated after the prompt, which fills the rest of L1024 (default 64)
  --kv         the PGM's KV-set setting: ${KV_SETTINGS.join(', ')} (default delayed)
  --models     default pgm,mdlm
  --dtype      the converted weights (default f16)
  --cache      checkpoints and converted models (default ~/.cache/pgm-webgpu/bench)
  --reconvert  convert again even when the converted model is cached`;

/** Bad arguments: the message and FULL_SIZE_USAGE go to stderr, exit 2. */
export class FullSizeUsageError extends Error {}

const positive = (flag: string, text: string): number => {
  const n = Number(text);
  if (!/^\d+$/.test(text) || !(n >= 1))
    throw new FullSizeUsageError(`${flag} needs a whole number >= 1, got ${JSON.stringify(text)}`);
  return n;
};

function list<T extends string>(flag: string, text: string, allowed: readonly T[]): T[] {
  const items = text.split(',').filter(Boolean);
  const bad = items.filter((x) => !(allowed as readonly string[]).includes(x));
  if (!items.length || bad.length)
    throw new FullSizeUsageError(
      `${flag}: ${bad.length ? `unknown ${bad.join(', ')}` : 'none given'}; choose from ${allowed.join(', ')}`,
    );
  return [...new Set(items)] as T[];
}

function one<T extends string>(flag: string, text: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(text))
    throw new FullSizeUsageError(`${flag}: unknown ${text}; choose one of ${allowed.join(', ')}`);
  return text as T;
}

export function parseFullSizeArgs(argv: readonly string[], defaultCache: string): FullSizeArgs {
  const args: FullSizeArgs = {
    adapters: CPU_ADAPTERS,
    models: ['pgm', 'mdlm'],
    dtype: 'f16',
    cache: defaultCache,
    reconvert: false,
    generate: 64,
    steps: 4,
    kv: 'delayed',
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === '--reconvert') {
      args.reconvert = true;
      continue;
    }
    if (!['--adapters', '--models', '--kv', '--dtype', '--steps', '--generate', '--cache'].includes(flag))
      throw new FullSizeUsageError(`unknown argument ${flag}`);
    const value = argv[i + 1];
    if (value === undefined || value.startsWith('--')) throw new FullSizeUsageError(`${flag} needs a value`);
    i++;
    if (flag === '--adapters') args.adapters = list(flag, value, ADAPTERS);
    else if (flag === '--models') args.models = list(flag, value, ['pgm', 'mdlm'] as const);
    else if (flag === '--kv') args.kv = one(flag, value, KV_SETTINGS);
    else if (flag === '--dtype') args.dtype = one(flag, value, ['f16', 'f32'] as const);
    else if (flag === '--steps') args.steps = positive(flag, value);
    else if (flag === '--generate') args.generate = positive(flag, value);
    else args.cache = value;
  }
  if (args.steps > args.generate)
    throw new FullSizeUsageError(`--steps ${args.steps} is more than the ${args.generate} tokens generated`);
  return args;
}

/** One whole generation: GenerationMetrics' times, and the first token of the setting's warm-up, its first generation. */
export interface SettingRun extends GenerationTimes {
  /** 'PGM exact', 'PGM KV set (delayed)', 'MDLM'. */
  setting: string;
  coldFirstTokenMs: number;
}

/** One model on one adapter, as the Node child or the page measured it. */
export interface ModelRun {
  model: 'PGM' | 'MDLM';
  device: string;
  /** createEngine: read, verify, upload (and what else it does before it returns). */
  loadMs: number;
  /** The most GPU memory the engine held (engine.gpuBytes after the load and after each generation). */
  gpuBytes: number;
  runs: SettingRun[];
}

/** A prompt of exactly `n` tokens of this model's vocabulary (the text does not matter: the weights are random). */
export function promptOf(engine: Engine, n: number): string {
  const prompt = ' the'.repeat(n);
  const got = engine.vocabulary.encode(prompt).length;
  if (got !== n) throw new Error(`bench: the prompt encodes to ${got} tokens, not ${n}`);
  return prompt;
}

/**
 * Steps of each setting's warm-up generation before it is aborted. The step the sampler has
 * in flight by then runs too, so two steps' shapes (the prompt's encoding, and the KV set's
 * small passes) are compiled and planned before the timed generation.
 */
const WARM_UP_STEPS = 1;

/**
 * The engine's model generating `w.generate` tokens after a prompt that fills the rest of its
 * length, in `w.steps` steps, timed by the step events engine.generate gives a page: each
 * setting's first WARM_UP_STEPS steps cold (its first token kept), then a whole generation
 * timed. The PGM runs exact and with the KV set `w.kv`; the MDLM once.
 */
export async function measureModel(
  engine: Engine,
  w: Workload,
  loadMs: number,
  log: (line: string) => void = () => {},
): Promise<ModelRun> {
  const L = engine.config.length;
  const prompt = promptOf(engine, L - 1 - w.generate);
  const pgm = engine.config.arch === 'pgm';
  const settings = pgm
    ? [
        { setting: 'PGM exact', encoder: 'exact' as const },
        { setting: `PGM KV set (${w.kv})`, encoder: w.kv },
      ]
    : [{ setting: 'MDLM', encoder: undefined }];
  let gpuBytes = engine.gpuBytes;
  const runs: SettingRun[] = [];
  for (const { setting, encoder } of settings) {
    // `warm`: stop after that many steps (the warm-up); else the whole generation, checked.
    const once = async (seed: number, warm?: number) => {
      const stop = new AbortController();
      const run = engine.generate({
        prompt,
        length: L,
        steps: w.steps,
        seed,
        signal: stop.signal,
        ...(encoder && { encoder }),
      });
      let revealed = 0;
      let seen = 0;
      const times = await timeGeneration(engine.gpuModel, setting, w.generate, async function* () {
        for await (const ev of run) {
          log(`  ${setting}${warm ? ' (warm-up)' : ''}: step ${ev.step + 1} of ${ev.steps}, ${ms(ev.ms)}`);
          revealed += ev.revealed.length;
          if (++seen === warm) stop.abort(); // at once: the sampler may have submitted the next step already
          yield {
            forward: ev.encoderRows + ev.decoderRows > 0,
            encoderRows: [ev.encoderRows],
            decoderRows: [ev.decoderRows],
            revealed: [ev.revealed],
          };
          if (seen === warm) break;
        }
      });
      if (warm !== undefined) {
        await run.catch(() => undefined); // aborted: the timed run must not wait behind its step in flight
      } else if (revealed !== w.generate) {
        throw new Error(`bench: ${setting} revealed ${revealed} tokens, not ${w.generate}`);
      }
      gpuBytes = Math.max(gpuBytes, engine.gpuBytes);
      return times;
    };
    const cold = await once(1, WARM_UP_STEPS);
    const run: SettingRun = { setting, coldFirstTokenMs: cold.firstTokenMs, ...(await once(2)) };
    runs.push(run);
    log(
      `  ${setting}: first token ${ms(run.firstTokenMs)} (cold ${ms(run.coldFirstTokenMs)}), ms per step p50 ${run.msPerStepP50.toFixed(0)} p95 ${run.msPerStepP95.toFixed(0)}, ${run.tokensPerS.toFixed(2)} tokens/s`,
    );
  }
  return { model: pgm ? 'PGM' : 'MDLM', device: engine.adapter.description, loadMs, gpuBytes, runs };
}

const ms = (x: number): string => `${(x / 1000).toFixed(1)} s`;

/**
 * Peak resident memory of the processes that held the model (MiB): Node's one process (and its
 * resident memory just before the load: the runtime, tsx and WebGPU), or Chromium's renderer
 * and GPU process.
 */
export type HostMemory = { process: number; before: number } | { renderer: number; gpuProcess: number };

/** A converted model: how long `pgm convert` took and its peak resident memory (in its own process). */
export interface Conversion {
  model: 'pgm' | 'mdlm';
  dtype: 'f16' | 'f32';
  date: string;
  ms: number;
  peakRssMiB: number;
  /** The child's resident memory before the conversion began (Node, tsx, the converter's modules). */
  beforeRssMiB: number;
  /** Bytes of the converted folder (config.json and shards). */
  bytes: number;
  checkpointBytes: number;
}

/** bench/results/full-size-<adapter>.json. */
export interface FullSizeResult {
  adapter: AdapterId;
  date: string;
  command: string;
  workload: Workload & { length: number; promptTokens: number };
  /** 1-minute load average at the start and the end of this adapter's runs, and the machine's cores. */
  load: { start: number; end: number; cores: number };
  conversions: Conversion[];
  models: (
    | (ModelRun & { dtype: 'f16' | 'f32'; host: HostMemory; error?: undefined })
    | { model: 'PGM' | 'MDLM'; dtype: 'f16' | 'f32'; error: string }
  )[];
}

const mib = (bytes: number): string => (bytes / 2 ** 20).toFixed(0);
const hostText = (h: HostMemory): string =>
  'process' in h
    ? `${h.process.toFixed(0)} (${h.before.toFixed(0)})`
    : `${h.renderer.toFixed(0)} + ${h.gpuProcess.toFixed(0)} (renderer + GPU process)`;

/** The results of one run as Markdown: a table of the conversions, and one row per adapter, model and setting. */
export function fullSizeMarkdown(results: readonly FullSizeResult[]): string {
  const lines: string[] = [];
  const first = results[0];
  if (!first) return '';
  const w = first.workload;
  lines.push(
    `Full-size models (OWT shape, random weights, ${first.date.slice(0, 10)}): L${w.length}, ${w.generate} tokens generated after a ${w.promptTokens}-token prompt in ${w.steps} steps, batch 1.`,
  );
  const conversions = [
    ...new Map(results.flatMap((r) => r.conversions).map((c) => [`${c.model}-${c.dtype}`, c])).values(),
  ];
  if (conversions.length) {
    lines.push(
      '',
      '| model | dtype | checkpoint MB | converted MB | convert s | peak RSS MiB (before) | converted on |',
      '|---|---|---:|---:|---:|---:|---|',
    );
    for (const c of conversions)
      lines.push(
        `| ${c.model.toUpperCase()} | ${c.dtype} | ${(c.checkpointBytes / 1e6).toFixed(0)} | ${(c.bytes / 1e6).toFixed(0)} | ${(c.ms / 1000).toFixed(1)} | ${c.peakRssMiB.toFixed(0)} (${c.beforeRssMiB.toFixed(0)}) | ${c.date.slice(0, 10)} |`,
      );
  }
  lines.push(
    '',
    '| adapter | model | load s | peak host MiB (before the load) | GPU MiB | first token s (cold) | ms/step p50 | ms/step p95 | tokens/s | dispatches/step |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const r of results) {
    for (const m of r.models) {
      if (m.error !== undefined) {
        lines.push(
          `| ${r.adapter} | ${m.model} ${m.dtype} | failed: ${m.error.replace(/\|/g, '\\|').replace(/\s+/g, ' ')} | | | | | | | |`,
        );
        continue;
      }
      for (const s of m.runs) {
        lines.push(
          `| ${r.adapter} | ${s.setting} | ${(m.loadMs / 1000).toFixed(1)} | ${hostText(m.host)} | ${mib(m.gpuBytes)} | ${(s.firstTokenMs / 1000).toFixed(1)} (${(s.coldFirstTokenMs / 1000).toFixed(1)}) | ${s.msPerStepP50.toFixed(0)} | ${s.msPerStepP95.toFixed(0)} | ${s.tokensPerS.toFixed(2)} | ${s.dispatchesPerStep.toFixed(0)} |`,
        );
      }
    }
  }
  const loads = results.map((r) => `${r.adapter} ${r.load.start.toFixed(1)}-${r.load.end.toFixed(1)}`).join(', ');
  lines.push('', `Load average during the runs (${first.load.cores} cores): ${loads}.`);
  return lines.join('\n');
}
