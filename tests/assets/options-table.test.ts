import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { usage } from '../../src/cli/generate.js';
import {
  checkEngineOptionTypes,
  ENGINE_DEFAULTS,
  ENGINE_OPTIONS,
  GENERATION_OPTIONS,
  IMPORT_OPTIONS,
} from '../../src/options.js';
import { README, engineOptionsTable, importOptionsTable, optionsTable } from '../../scripts/options-table.js';

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
    for (const table of [GENERATION_OPTIONS, ENGINE_OPTIONS, IMPORT_OPTIONS]) {
      expect(new Set(table.map((o) => o.name)).size).toBe(table.length);
      for (const o of table) expect(o.check(Symbol('not an option value')), o.name).toBeTypeOf('string');
    }
  });
});

describe("one table of createEngine's options", () => {
  it("README.md's engine option list is the table", () => {
    expect(readFileSync(README, 'utf8')).toContain(engineOptionsTable());
  });

  const engineOptions = /export interface EngineOptions \{([\s\S]*?)\n\}/.exec(
    readFileSync(new URL('../../src/types.ts', import.meta.url), 'utf8'),
  )![1];

  it('names every createEngine option of the types, and nothing else', () => {
    const declared = engineOptions.match(/^ {2}(\w+)\?:/gm)!.map((m) => m.trim().slice(0, -2));
    expect(ENGINE_OPTIONS.map((o) => o.name).sort()).toEqual(declared.sort());
  });

  it('gives the defaults that are one value as the code uses them (ENGINE_DEFAULTS), and the JSDoc of EngineOptions says the same', () => {
    const jsdoc = new Map(
      [...engineOptions.matchAll(/\/\*\*([\s\S]*?)\*\/\s*\n {2}(\w+)\?:/g)].map((m) => [
        m[2],
        m[1].replace(/\s*\n\s*\*\s*/g, ' '),
      ]),
    );
    const literal = (v: unknown) => (typeof v === 'string' ? `'${v}'` : String(v));
    expect(Object.keys(ENGINE_DEFAULTS).sort()).toEqual(['maxBatch', 'stallTimeout', 'warmUp', 'weightStorage']);
    for (const [name, value] of Object.entries(ENGINE_DEFAULTS)) {
      expect(ENGINE_OPTIONS.find((o) => o.name === name)?.default, name).toBe(value);
      expect(jsdoc.get(name), name).toContain(`(default ${literal(value)}`);
    }
  });

  it('unknown names and wrong types are PgmError(option) naming them', () => {
    const message = (options: unknown) => {
      try {
        checkEngineOptionTypes(options);
      } catch (e) {
        return [(e as { code: string }).code, (e as Error).message];
      }
      return undefined;
    };
    expect(message({ modle: 'x' })).toEqual([
      'option',
      `createEngine: unknown option "modle"; the options are ${ENGINE_OPTIONS.map((o) => o.name).join(', ')}`,
    ]);
    expect(message({ onProgres: () => undefined })?.[1]).toMatch(/^createEngine: unknown option "onProgres"/);
    expect(message({ maxBatch: '4' })).toEqual([
      'option',
      'createEngine: maxBatch must be an integer >= 1, got string "4"',
    ]);
    expect(message({ stallTimeout: 2 ** 31 })).toEqual([
      'option',
      'createEngine: stallTimeout must be a number of milliseconds in (0, 2^31), or Infinity, got 2147483648',
    ]);
    expect(message({ cache: 'yes' })?.[1]).toBe(
      'createEngine: cache must be true, false or a ModelStore { get, put, delete, keys }, got string "yes"',
    );
    expect(message({ weightStorage: 'bf16' })?.[1]).toBe(
      'createEngine: unknown weightStorage "bf16"; use one of auto, f32, f16',
    );
    expect(message('pgm-small')?.[1]).toBe('createEngine: options must be an object, got string "pgm-small"');
    expect(
      message({
        model: 'pgm-small',
        signal: new AbortController().signal,
        stallTimeout: Infinity,
        cache: false,
        warmUp: true,
        onProgress: () => undefined,
        maxBatch: undefined,
      }),
    ).toBeUndefined();
  });
});

describe("one table of importCheckpoint's options", () => {
  it("README.md's import option list is the table", () => {
    expect(readFileSync(README, 'utf8')).toContain(importOptionsTable());
  });

  it('names every importCheckpoint option of the types, and nothing else', () => {
    const fields = (file: string, name: string) => {
      const text = readFileSync(new URL(`../../src/${file}`, import.meta.url), 'utf8');
      return new RegExp(`export interface ${name}\\b[^{]*\\{([\\s\\S]*?)\\n\\}`)
        .exec(text)![1]
        .match(/^ {2}(\w+)\?:/gm)!
        .map((m) => m.trim().slice(0, -2));
    };
    // The API's ImportOptions extends the converter's, which extends ConvertOptions (less pieceValues, for tests) and ReadOptions.
    const declared = [
      ...fields('types.ts', 'ImportOptions'),
      ...fields('convert/import.ts', 'ImportOptions'),
      ...fields('convert/convert.ts', 'ConvertOptions').filter((f) => f !== 'pieceValues'),
      ...fields('convert/convert.ts', 'ReadOptions'),
    ];
    expect(IMPORT_OPTIONS.map((o) => o.name).sort()).toEqual([...new Set(declared)].sort());
  });
});
