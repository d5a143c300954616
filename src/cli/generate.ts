import { PgmError } from '../errors.js';
import { createEngine } from '../node.js';
import { checkBatchOptionTypes, GENERATION_OPTIONS, type GenerationOption } from '../options.js';
import type { BatchOptions, BatchStepEvent } from '../types.js';
import { UsageError, parseCommandLine, parseNumber, stdoutClosed } from './args.js';

export const summary = 'generate text with a PGM (or MDLM), streaming progress on stderr';

/** The flags of `pgm generate` that are generation options: their names, parsing and docs come from GENERATION_OPTIONS. */
const OPTION_FLAGS = GENERATION_OPTIONS.filter(
  (o): o is GenerationOption & { cli: NonNullable<GenerationOption['cli']> } => o.cli !== undefined,
);

/** --batch sizes the engine's buffers (maxBatch); the GPU limits refuse far less than this on small devices. */
const MAX_BATCH = 64;

/** `--flag  text`, the text wrapped under itself at 100 columns. */
function describe(flag: string, text: string): string {
  const lines: string[] = [];
  let line = `  --${flag.padEnd(12)} `;
  const indent = ' '.repeat(line.length);
  for (const word of text.split(' ')) {
    if (line.length + word.length > 100 && line.trim()) {
      lines.push(line.trimEnd());
      line = indent;
    }
    line += `${word} `;
  }
  return [...lines, line.trimEnd()].join('\n');
}

export const usage = [
  `usage: pgm generate [--model <id|dir|file.ckpt>] [--<option> VALUE ...] [--batch B] [--json]`,
  '',
  describe(
    'model',
    'an id of weights-manifest.json (default: its default model), a converted model directory, or a Lightning .ckpt (EMA weights)',
  ),
  ...OPTION_FLAGS.map((o) =>
    describe(o.cli.flag, o.cli.parse === 'switch' ? o.doc : `${o.doc}; ${o.takes} (default: ${o.default})`),
  ),
  describe('batch', `generate B sequences at once, B in [1, ${MAX_BATCH}] (default: 1)`),
  describe('json', 'one JSON line per step event on stdout, then the final result'),
  '',
  'Progress goes to stderr; stdout gets only the text. With --batch, each text comes after a line',
  '"--- sequence b (seed S, N characters) ---", b from 0 (N counts code points; --json for programs).',
].join('\n');

const number = (text: string | undefined, option: string, integer: boolean): number | undefined =>
  text === undefined ? undefined : parseNumber(text, option, integer, usage);

export async function run(argv: string[], signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      model: { type: 'string' },
      ...Object.fromEntries(
        OPTION_FLAGS.map((o) => [
          o.cli.flag,
          { type: o.cli.parse === 'switch' ? ('boolean' as const) : ('string' as const) },
        ]),
      ),
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
  const batch = number(values.batch, '--batch', true)!;
  if (batch < 1 || batch > MAX_BATCH) throw new UsageError(`--batch must be in [1, ${MAX_BATCH}], got ${batch}`, usage);
  // Each flag's text read as its option's type; the table's own checks run before the model loads.
  const given: Record<string, unknown> = {};
  for (const o of OPTION_FLAGS) {
    const text = (values as Record<string, string | boolean | undefined>)[o.cli.flag];
    given[o.name] =
      o.cli.parse === 'integer' || o.cli.parse === 'number'
        ? number(text as string | undefined, `--${o.cli.flag}`, o.cli.parse === 'integer')
        : text;
  }
  const seed = (given.seed as number | undefined) ?? Math.floor(Math.random() * 2 ** 31);
  if (seed < 0 || seed + batch - 1 >= 2 ** 32)
    throw new UsageError(
      `--seed must be an integer in [0, ${2 ** 32 - batch}] (sequence b uses seed + b < 2^32), got ${seed}`,
      usage,
    );
  const scoped = (scope: GenerationOption['scope']) =>
    Object.fromEntries(OPTION_FLAGS.filter((o) => o.scope === scope).map((o) => [o.name, given[o.name]]));
  const options: BatchOptions = {
    ...scoped('shared'),
    signal: signal ? AbortSignal.any([stdoutClosed.signal, signal]) : stdoutClosed.signal,
    sequences: Array.from({ length: batch }, (_, b) => ({ ...scoped('sequence'), seed: seed + b })),
  };
  try {
    checkBatchOptionTypes(options);
  } catch (e) {
    if (e instanceof PgmError) throw new UsageError(e.message, usage);
    throw e;
  }

  const progress = (text: string) => process.stderr.isTTY && process.stderr.write(`\r\x1b[K${text}`);
  const engine = await createEngine({
    model: values.model,
    maxBatch: batch,
    signal,
    onProgress: (p) => {
      if (p.warning) process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[K' : ''}pgm: warning: ${p.warning}\n`);
      else
        progress(
          p.phase === 'download'
            ? `loading ${(p.loadedBytes / 2 ** 20).toFixed(1)} / ${(p.totalBytes / 2 ** 20).toFixed(1)} MiB`
            : `${p.phase}...`,
        );
    },
  });
  try {
    const run = engine.generateBatch(options);
    for await (const e of run as AsyncIterable<BatchStepEvent>) {
      if (values.json) {
        console.log(
          JSON.stringify({
            step: e.step,
            steps: e.steps,
            ms: e.ms,
            encoderRows: e.sequences.map((s) => s.encoderRows),
            decoderRows: e.sequences.map((s) => s.decoderRows),
            sequences: e.sequences.map((s) => ({ revealed: s.revealed, tokens: Array.from(s.tokens), text: s.text })),
          }),
        );
      }
      progress(`step ${e.step + 1}/${e.steps}  ${e.ms.toFixed(0)} ms`);
    }
    const result = await run;
    progress('');
    const { stats } = result;
    console.error(
      `${stats.steps} steps, ${stats.forwardPasses} forward passes, ${(stats.totalMs / 1000).toFixed(2)} s, ${stats.tokensPerSecond.toFixed(1)} tokens/s (seed ${seed}, ${engine.adapter.vendor || 'unknown'} ${engine.adapter.architecture})`,
    );
    if (values.json)
      console.log(
        JSON.stringify({
          result: {
            sequences: result.sequences.map((s) => ({ text: s.text, tokens: Array.from(s.tokens) })),
            stats,
            seed,
          },
        }),
      );
    else if (batch === 1) console.log(result.sequences[0].text);
    else
      for (const [b, s] of result.sequences.entries())
        console.log(`--- sequence ${b} (seed ${seed + b}, ${[...s.text].length} characters) ---\n${s.text}`);
  } catch (e) {
    // Nobody reads stdout any more (`| head -n 1`): stopping is the expected end, not a failure.
    if (e instanceof PgmError && e.code === 'aborted' && stdoutClosed.signal.aborted) return 0;
    // A mistake that only the model reveals (--encoder delayed for an MDLM) is still a usage mistake.
    if (e instanceof PgmError && e.code === 'option') throw new UsageError(e.message);
    throw e;
  } finally {
    engine.dispose();
  }
  return 0;
}
