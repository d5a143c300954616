import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command-line mistake: `pgm` prints the message and the command's usage, exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage?: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * `util.parseArgs` (strict) with its errors turned into UsageErrors that carry `usage`. A value
 * that looks like a negative number (`--seed -1`) is taken as the option's value, not as an
 * option, so the command can say what is wrong with it.
 */
export function parseCommandLine<T extends NonNullable<ParseArgsConfig['options']>>(
  argv: string[],
  options: T,
  usage: string,
) {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : '';
    if (
      Object.hasOwn(options, name) &&
      options[name].type === 'string' &&
      /^-(\d|\.\d|Infinity)/.test(argv[i + 1] ?? '')
    )
      args.push(`${argv[i]}=${argv[++i]}`);
    else args.push(argv[i]);
  }
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0], usage);
  }
}

/** A byte count such as `1048576`, `64M`, `2G` (binary units). */
export function parseBytes(text: string, option: string, usage: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text);
  if (!m)
    throw new UsageError(`${option} expects a byte count such as 67108864 or 64M, got ${JSON.stringify(text)}`, usage);
  const unit = (m[2] ?? '').toUpperCase()[0];
  const value = Number(m[1]) * (unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1);
  if (!Number.isSafeInteger(value) || value <= 0)
    throw new UsageError(`${option} must be a positive byte count, got ${JSON.stringify(text)}`, usage);
  return value;
}

/**
 * Aborted when stdout's reader goes away (`pgm generate --json | head -n 1`): the command stops
 * its work and exits quietly, as Unix tools do when an early-closing reader is done with them.
 */
export const stdoutClosed = new AbortController();

/** Turn write errors on stdout and stderr (EPIPE) into `stdoutClosed`, instead of an uncaught 'error' event. */
export function watchOutput(): void {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE' && !stdoutClosed.signal.aborted) process.stderr.write(`pgm: stdout: ${e.message}\n`);
    stdoutClosed.abort();
  });
  // Nothing more can be said when stderr is gone: the exit code still tells.
  process.stderr.on('error', () => undefined);
}

/**
 * A number as people type it on a command line: decimal digits (and for a non-integer a point
 * and an exponent), nothing else: `0x10`, `1e3` for an integer, `' 8'` and integers past 2^53
 * (which would round) are mistakes, not 16, 1000, 8 and a neighbour.
 */
export function parseNumber(text: string, option: string, integer: boolean, usage: string): number {
  const pattern = integer ? /^-?\d+$/ : /^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i;
  const v = Number(text);
  if (!pattern.test(text) || !Number.isFinite(v) || (integer && !Number.isSafeInteger(v))) {
    throw new UsageError(
      `${option} expects ${integer ? 'an integer (decimal digits, below 2^53)' : 'a decimal number'}, got ${JSON.stringify(text)}`,
      usage,
    );
  }
  return v;
}

/** Exit codes of the signals a command stops on: 128 + the signal number, as a shell reports them. */
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

/**
 * SIGINT (Ctrl-C) and SIGTERM while a command runs: the first aborts `signal`, and the command
 * stops its load, generation or conversion and removes what it left half-written; `pgm` then
 * exits with `exitCode()` (130, 143). A second one ends the process at once, with that code.
 */
export function watchInterrupts(): { signal: AbortSignal; exitCode(): number | undefined; dispose(): void } {
  const controller = new AbortController();
  let code: number | undefined;
  const handlers = Object.entries(SIGNAL_EXIT).map(([name, exit]) => {
    const handler = () => {
      if (code !== undefined) process.exit(code);
      code = exit;
      controller.abort(new Error(`stopped by ${name}`));
    };
    process.on(name, handler);
    return () => void process.off(name, handler);
  });
  return { signal: controller.signal, exitCode: () => code, dispose: () => handlers.forEach((off) => off()) };
}
