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

/** `util.parseArgs` (strict) with its errors turned into UsageErrors that carry `usage`. */
export function parseCommandLine<T extends NonNullable<ParseArgsConfig['options']>>(argv: string[], options: T, usage: string) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
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
