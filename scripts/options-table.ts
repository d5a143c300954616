/**
 * The README's tables of generation options and of createEngine's options, rendered from
 * GENERATION_OPTIONS and ENGINE_OPTIONS (src/options.ts), the one place where each option's
 * type, default, bound and meaning are written.
 *
 *   npx tsx scripts/options-table.ts           # rewrite the tables in README.md
 * tests/assets/options-table.test.ts fails when README.md's tables are not these.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ENGINE_OPTIONS, GENERATION_OPTIONS } from '../src/options.js';

export const README = fileURLToPath(new URL('../README.md', import.meta.url));
export const START = '<!-- generation options: scripts/options-table.ts -->';
export const END = '<!-- end of generation options -->';
export const ENGINE_START = '<!-- engine options: scripts/options-table.ts -->';
export const ENGINE_END = '<!-- end of engine options -->';

const cell = (text: string): string => text.replace(/\|/g, '\\|');

export function optionsTable(): string {
  const rows = GENERATION_OPTIONS.map((o) => `| \`${o.name}\` | ${o.scope === 'sequence' ? 'each sequence' : 'the batch'} | ${cell(o.takes)} | ${cell(o.default)} | ${cell(o.doc)} | ${o.cli ? `\`--${o.cli.flag}\`` : ''} |`);
  return [START, '| option | per | takes | default | what it does | CLI |', '|---|---|---|---|---|---|', ...rows, END].join('\n');
}

export function engineOptionsTable(): string {
  const rows = ENGINE_OPTIONS.map((o) => `| \`${o.name}\` | ${cell(o.takes)} | ${cell(o.default)} | ${cell(o.doc)} |`);
  return [ENGINE_START, '| option | takes | default | what it does |', '|---|---|---|---|', ...rows, ENGINE_END].join('\n');
}

/** `readme` with the block between `start` and `end` replaced by `table`. */
function replaceBlock(readme: string, start: string, end: string, table: string): string {
  const [a, b] = [readme.indexOf(start), readme.indexOf(end)];
  if (a < 0 || b < a) throw new Error(`README.md has no "${start}" ... "${end}" block`);
  return readme.slice(0, a) + table + readme.slice(b + end.length);
}

/** README.md with its tables replaced by `optionsTable()` and `engineOptionsTable()`. */
export function withTable(readme: string): string {
  return replaceBlock(replaceBlock(readme, START, END, optionsTable()), ENGINE_START, ENGINE_END, engineOptionsTable());
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(README, withTable(readFileSync(README, 'utf8')));
}
