import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { usage } from '../../src/cli/generate.js';
import { GENERATION_OPTIONS } from '../../src/options.js';
import { README, optionsTable } from '../../scripts/options-table.js';

describe('one table of generation options', () => {
  it("README.md's option list is the table (npx tsx scripts/options-table.ts rewrites it)", () => {
    expect(readFileSync(README, 'utf8')).toContain(optionsTable());
  });

  it('pgm generate --help describes every option the CLI takes, with its default', () => {
    for (const o of GENERATION_OPTIONS.filter((x) => x.cli)) {
      expect(usage, o.name).toContain(`--${o.cli!.flag}`);
      if (o.cli!.parse !== 'switch') expect(usage.replace(/\s+/g, ' '), o.name).toContain(`(default: ${o.default})`);
    }
  });

  it('every option has its type check, and the names are unique', () => {
    expect(new Set(GENERATION_OPTIONS.map((o) => o.name)).size).toBe(GENERATION_OPTIONS.length);
    for (const o of GENERATION_OPTIONS) expect(o.check(Symbol('not an option value')), o.name).toBeTypeOf('string');
  });
});
