import type { BatchStepEvent } from '../engine.js';
import { PgmError } from '../errors.js';
import { createEngine } from '../node.js';
import { TEMPERATURE_RANGE } from '../options.js';
import { MDLM_STEPS_PER_POSITION } from '../sampling/generate.js';
import { ORDERS, SCHEDULES, type Order, type Schedule } from '../sampling/schedule.js';
import { UsageError, parseCommandLine, stdoutClosed } from './args.js';

export const summary = 'generate text with a PGM (or MDLM), streaming progress on stderr';

export const usage = `usage: pgm generate [--model <id|dir|file.ckpt>] [--prompt TEXT | --infill TEMPLATE] [--length N]
                    [--steps S] [--order random|left-to-right|confident] [--schedule uniform|non-uniform]
                    [--seed N] [--temperature T] [--top-p P] [--greedy] [--batch B] [--json]

  --model      an id of weights-manifest.json (default: its default model), a converted
               model directory, or a Lightning .ckpt (EMA weights)
  --prompt     text placed after BOS at positions 1..
  --infill     text with holes: {{n}} is a hole of n >= 1 tokens, e.g. "The {{3}} sat on the mat.{{5}}";
               a template that ends with a hole ends there (it sets the length), otherwise
               the positions after it are generated too
  --length     generate positions < N (default: the model length, or where --infill ends)
  --steps      sampling steps (default: min(64, positions to generate)); at most the positions
               to generate (PGM), ${MDLM_STEPS_PER_POSITION} x that (MDLM)
  --order      random (default, the paper), left-to-right (semi-autoregressive), confident
               (predicts every remaining position each step, reveals the most probable: costlier)
  --temperature  in ${TEMPERATURE_RANGE} (default 1); --greedy is the T -> 0 limit
  --top-p      nucleus mass in (0, 1] (default: the checkpoint's)
  --seed       integer in [0, 2^32): seed of sequence 0; sequence b uses seed + b (default: random)
  --batch      generate B sequences at once (B <= 64)
  --json       one JSON line per step event on stdout, then the final result

Progress goes to stderr; stdout gets only the text. With --batch, each text comes after a line
"--- sequence b (seed S, N characters) ---", b from 0 (N counts code points; --json for programs).`;

/** --batch sizes the engine's buffers (maxBatch); the GPU limits refuse far less than this on small devices. */
const MAX_BATCH = 64;

const number = (text: string | undefined, option: string, integer: boolean): number | undefined => {
  if (text === undefined) return undefined;
  const v = Number(text);
  if (text.trim() === '' || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
    throw new UsageError(`${option} expects ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(text)}`, usage);
  }
  return v;
};

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      model: { type: 'string' },
      prompt: { type: 'string' },
      infill: { type: 'string' },
      length: { type: 'string' },
      steps: { type: 'string' },
      order: { type: 'string', default: 'random' },
      schedule: { type: 'string', default: 'uniform' },
      seed: { type: 'string' },
      temperature: { type: 'string' },
      'top-p': { type: 'string' },
      greedy: { type: 'boolean', default: false },
      batch: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`, usage);
  if (!(ORDERS as readonly string[]).includes(values.order!)) throw new UsageError(`--order must be one of ${ORDERS.join(', ')}`, usage);
  if (!(SCHEDULES as readonly string[]).includes(values.schedule!)) throw new UsageError(`--schedule must be one of ${SCHEDULES.join(', ')}`, usage);
  const batch = number(values.batch, '--batch', true)!;
  if (batch < 1 || batch > MAX_BATCH) throw new UsageError(`--batch must be in [1, ${MAX_BATCH}], got ${batch}`, usage);
  const seed = number(values.seed, '--seed', true) ?? Math.floor(Math.random() * 2 ** 31);
  if (seed < 0 || seed + batch - 1 >= 2 ** 32) throw new UsageError(`--seed must be an integer in [0, ${2 ** 32 - batch}] (sequence b uses seed + b < 2^32), got ${seed}`, usage);

  const progress = (text: string) => process.stderr.isTTY && process.stderr.write(`\r\x1b[K${text}`);
  const engine = await createEngine({
    model: values.model,
    maxBatch: batch,
    onProgress: ({ loadedBytes, totalBytes }) => progress(`loading ${(loadedBytes / 2 ** 20).toFixed(1)} / ${(totalBytes / 2 ** 20).toFixed(1)} MiB`),
  });
  try {
    const run = engine.generateBatch({
      signal: stdoutClosed.signal,
      sequences: Array.from({ length: batch }, (_, b) => ({ prompt: values.prompt, infill: values.infill, seed: seed + b })),
      length: number(values.length, '--length', true),
      steps: number(values.steps, '--steps', true),
      order: values.order as Order,
      schedule: values.schedule as Schedule,
      temperature: number(values.temperature, '--temperature', false),
      topP: number(values['top-p'], '--top-p', false),
      greedy: values.greedy,
    });
    for await (const e of run as AsyncIterable<BatchStepEvent>) {
      if (values.json) {
        console.log(JSON.stringify({ step: e.step, steps: e.steps, ms: e.ms, sequences: e.sequences.map((s) => ({ revealed: s.revealed, tokens: Array.from(s.tokens), text: s.text })) }));
      }
      progress(`step ${e.step + 1}/${e.steps}  ${e.ms.toFixed(0)} ms`);
    }
    const result = await run;
    progress('');
    const { stats } = result;
    console.error(`${stats.steps} steps, ${stats.forwardPasses} forward passes, ${(stats.totalMs / 1000).toFixed(2)} s, ${stats.tokensPerSecond.toFixed(1)} tokens/s (seed ${seed}, ${engine.adapter.vendor || 'unknown'} ${engine.adapter.architecture})`);
    if (values.json) console.log(JSON.stringify({ result: { sequences: result.sequences.map((s) => ({ text: s.text, tokens: Array.from(s.tokens) })), stats, seed } }));
    else if (batch === 1) console.log(result.sequences[0].text);
    else for (const [b, s] of result.sequences.entries()) console.log(`--- sequence ${b} (seed ${seed + b}, ${[...s.text].length} characters) ---\n${s.text}`);
  } catch (e) {
    // Nobody reads stdout any more (`| head -n 1`): stopping is the expected end, not a failure.
    if (e instanceof PgmError && e.code === 'aborted' && stdoutClosed.signal.aborted) return 0;
    throw e;
  } finally {
    engine.dispose();
  }
  return 0;
}
