/**
 * The README's tables of generation options, of createEngine's options and of
 * importCheckpoint's, rendered from GENERATION_OPTIONS, ENGINE_OPTIONS and IMPORT_OPTIONS
 * (src/options.ts), the one place where each option's type, default, bound and meaning are written.
 *
 *   npx tsx scripts/options-table.ts           # rewrite the tables in README.md
 * tests/assets/options-table.test.ts fails when README.md's tables are not these.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ENGINE_OPTIONS, GENERATION_OPTIONS, IMPORT_OPTIONS, type EngineOption } from '../src/options.js';

export const README = fileURLToPath(new URL('../README.md', import.meta.url));
export const START = '<!-- generation options: scripts/options-table.ts -->';
export const END = '<!-- end of generation options -->';
export const ENGINE_START = '<!-- engine options: scripts/options-table.ts -->';
export const ENGINE_END = '<!-- end of engine options -->';
export const IMPORT_START = '<!-- import options: scripts/options-table.ts -->';
export const IMPORT_END = '<!-- end of import options -->';

const cell = (text: string): string => text.replace(/\|/g, '\\|');

export function optionsTable(): string {
  const rows = GENERATION_OPTIONS.map(
    (o) =>
      `| \`${o.name}\` | ${o.scope === 'sequence' ? 'each sequence' : 'the batch'} | ${cell(o.takes)} | ${cell(o.default)} | ${cell(o.doc)} | ${o.cli ? `\`--${o.cli.flag}\`` : ''} |`,
  );
  return [
    START,
    '| option | per | takes | default | what it does | CLI |',
    '|---|---|---|---|---|---|',
    ...rows,
    END,
  ].join('\n');
}

function apiOptionsTable(options: readonly EngineOption[], start: string, end: string): string {
  const rows = options.map((o) => `| \`${o.name}\` | ${cell(o.takes)} | ${cell(String(o.default))} | ${cell(o.doc)} |`);
  return [start, '| option | takes | default | what it does |', '|---|---|---|---|', ...rows, end].join('\n');
}

export const engineOptionsTable = (): string => apiOptionsTable(ENGINE_OPTIONS, ENGINE_START, ENGINE_END);
export const importOptionsTable = (): string => apiOptionsTable(IMPORT_OPTIONS, IMPORT_START, IMPORT_END);

/** `readme` with the block between `start` and `end` replaced by `table`. */
function replaceBlock(readme: string, start: string, end: string, table: string): string {
  const [a, b] = [readme.indexOf(start), readme.indexOf(end)];
  if (a < 0 || b < a) throw new Error(`README.md has no "${start}" ... "${end}" block`);
  return readme.slice(0, a) + table + readme.slice(b + end.length);
}

/** README.md with its tables replaced by `optionsTable()`, `engineOptionsTable()` and `importOptionsTable()`. */
export function withTable(readme: string): string {
  const tables: [string, string, string][] = [
    [START, END, optionsTable()],
    [ENGINE_START, ENGINE_END, engineOptionsTable()],
    [IMPORT_START, IMPORT_END, importOptionsTable()],
  ];
  return tables.reduce((text, [start, end, table]) => replaceBlock(text, start, end, table), readme);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(README, withTable(readFileSync(README, 'utf8')));
}
