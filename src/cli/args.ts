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
export function parseCommandLine<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith('--') ? argv[i].slice(2) : '';
    if (Object.hasOwn(options, name) && options[name].type === 'string' && /^-(\d|\.\d|Infinity)/.test(argv[i + 1] ?? '')) args.push(`${argv[i]}=${argv[++i]}`);
    else args.push(argv[i]);
  }
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError((e as Error).message.split('\n')[0], usage);
  }
}

/** A byte count such as `1048576`, `512M`, `2G` (binary units). */
export function parseBytes(text: string, option: string, usage: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${option} expects a byte count such as 536870912 or 512M, got ${JSON.stringify(text)}`, usage);
  const unit = (m[2] ?? '').toUpperCase()[0];
  const value = Number(m[1]) * (unit === 'K' ? 1024 : unit === 'M' ? 1024 ** 2 : unit === 'G' ? 1024 ** 3 : 1);
  if (!Number.isSafeInteger(value) || value <= 0) throw new UsageError(`${option} must be a positive byte count, got ${JSON.stringify(text)}`, usage);
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
