#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { PgmError } from '../errors.js';
import { UsageError, stdoutClosed, watchInterrupts, watchOutput } from './args.js';

/**
 * `pgm <command> [args]`. Each command lives in `src/cli/<command>.ts` and exports
 * `summary: string`, `usage: string` and `run(argv, signal): Promise<number>` (the exit code).
 * Throw UsageError for command-line mistakes (exit 2) and PgmError for everything else (exit 1).
 * `signal` aborts on SIGINT or SIGTERM: the command stops, cleans up, and pgm exits 130 or 143.
 */
interface Command {
  summary: string;
  usage: string;
  run(argv: string[], signal: AbortSignal): Promise<number>;
}

// Loaded on demand, so `pgm convert` never initialises WebGPU.
const COMMANDS: Record<string, () => Promise<Command>> = {
  convert: () => import('./convert.js'),
  reshard: () => import('./reshard.js'),
  logits: () => import('./logits.js'),
  generate: () => import('./generate.js'),
};

const loadCommand = (name: string): Promise<Command> | undefined =>
  Object.hasOwn(COMMANDS, name) ? COMMANDS[name]() : undefined;

async function mainUsage(): Promise<string> {
  const lines = ['usage: pgm <command> [options]', '', 'commands:'];
  for (const name of Object.keys(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${(await loadCommand(name)!).summary}`);
  lines.push('', 'Run `pgm help <command>` or `pgm <command> --help` for its options.');
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const interrupts = watchInterrupts();
  try {
    if (name === 'help' && rest.length > 0) {
      const cmd = await loadCommand(rest[0]);
      if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(rest[0])}`, await mainUsage());
      console.log(cmd.usage);
      return 0;
    }
    if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
      const text = await mainUsage();
      if (name === undefined) {
        console.error(text);
        return 2;
      }
      console.log(text);
      return 0;
    }
    const cmd = await loadCommand(name);
    if (!cmd) throw new UsageError(`unknown command ${JSON.stringify(name)}`, await mainUsage());
    const code = await cmd.run(rest, interrupts.signal);
    return interrupts.exitCode() ?? code;
  } catch (e) {
    // Stopped by a signal: the command cleaned up; a shell says the rest.
    if (interrupts.exitCode() !== undefined) return interrupts.exitCode()!;
    if (e instanceof UsageError) {
      console.error(`pgm: ${e.message}${e.usage ? `\n\n${e.usage}` : ''}`);
      return 2;
    }
    // The reader of stdout went away: whatever failed after that, nobody is waiting for it.
    if (stdoutClosed.signal.aborted) return 0;
    if (e instanceof PgmError) {
      console.error(`pgm: ${e.message}`);
      return 1;
    }
    console.error(`pgm: internal error: ${(e as Error)?.message ?? String(e)}`);
    if (process.env.PGM_DEBUG) console.error(e);
    return 1;
  } finally {
    interrupts.dispose();
  }
}

const entry = process.argv[1] ? pathToFileURL(realpathSync(process.argv[1])).href : '';
if (import.meta.url === entry) {
  watchOutput();
  process.exitCode = await main(process.argv.slice(2));
}
