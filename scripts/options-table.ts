/**
 * The README's table of generation options, rendered from GENERATION_OPTIONS (src/options.ts),
 * the one place where each option's type, default, bound and meaning are written.
 *
 *   npx tsx scripts/options-table.ts           # rewrite the table in README.md
 * tests/assets/options-table.test.ts fails when README.md's table is not this one.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GENERATION_OPTIONS } from '../src/options.js';

export const README = fileURLToPath(new URL('../README.md', import.meta.url));
export const START = '<!-- generation options: scripts/options-table.ts -->';
export const END = '<!-- end of generation options -->';

const cell = (text: string): string => text.replace(/\|/g, '\\|');

export function optionsTable(): string {
  const rows = GENERATION_OPTIONS.map((o) => `| \`${o.name}\` | ${o.scope === 'sequence' ? 'each sequence' : 'the batch'} | ${cell(o.takes)} | ${cell(o.default)} | ${cell(o.doc)} | ${o.cli ? `\`--${o.cli.flag}\`` : ''} |`);
  return [START, '| option | per | takes | default | what it does | CLI |', '|---|---|---|---|---|---|', ...rows, END].join('\n');
}

/** README.md with its table replaced by `optionsTable()`. */
export function withTable(readme: string): string {
  const [a, b] = [readme.indexOf(START), readme.indexOf(END)];
  if (a < 0 || b < a) throw new Error(`README.md has no "${START}" ... "${END}" block`);
  return readme.slice(0, a) + optionsTable() + readme.slice(b + END.length);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(README, withTable(readFileSync(README, 'utf8')));
}
