import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { inlineIncludes, MODULES } from '../../scripts/bundle-assets.js';
import { PgmError } from '../../src/errors.js';
import { pgmError } from '../convert/helpers.js';
import { bindings, constant, preprocess, shader, structFields, workgroupSize } from '../../src/gpu/shader.js';
import { WGSL } from '../../src/gpu/wgsl.js';
import { emittedFile, PARCEL_FIX } from '../../src/weights/bundlers.js';
import { PACKAGED_FILES, PACKAGED_MANIFEST } from '../../src/weights/packaged.js';

const ROOT = join(import.meta.dirname, '..', '..');

describe('generated asset modules', () => {
  for (const { out, text } of MODULES) {
    it(`${out} matches its sources (npx tsx scripts/bundle-assets.ts regenerates it)`, () => {
      expect(readFileSync(join(ROOT, out), 'utf8')).toBe(text());
    });
  }

  it('every kernel of shaders/ is carried, its includes resolved', () => {
    const files = readdirSync(join(ROOT, 'shaders')).filter((f) => f.endsWith('.wgsl'));
    const includeOnly = ['common.wgsl', 'attention_io.wgsl', 'matmul_io.wgsl'];
    expect(Object.keys(WGSL).sort()).toEqual(files.filter((f) => !includeOnly.includes(f)).sort());
    for (const [file, code] of Object.entries(WGSL)) {
      expect(code, file).not.toMatch(/#include/);
      expect(code.startsWith(readFileSync(join(ROOT, 'shaders', file), 'utf8').split('#include')[0]), file).toBe(true);
    }
    // matmul.wgsl includes matmul_io.wgsl, which includes common.wgsl: both texts are inside.
    expect(WGSL['matmul.wgsl']).toContain(readFileSync(join(ROOT, 'shaders', 'common.wgsl'), 'utf8'));
  });

  it('inlineIncludes refuses cycles and malformed includes', () => {
    const files: Record<string, string> = {
      'a.wgsl': '#include "b.wgsl"',
      'b.wgsl': '#include "a.wgsl"',
      'c.wgsl': '#include b.wgsl',
    };
    expect(() => inlineIncludes('a.wgsl', (f) => files[f])).toThrow(/cycle/);
    expect(() => inlineIncludes('c.wgsl', (f) => files[f])).toThrow(/malformed/);
  });

  it('the packaged manifest is weights-manifest.json, with a literal URL per shipped file', () => {
    expect(PACKAGED_MANIFEST).toEqual(JSON.parse(readFileSync(join(ROOT, 'weights-manifest.json'), 'utf8')));
    for (const model of PACKAGED_MANIFEST.models) {
      const urls = PACKAGED_FILES[model.id];
      expect(Object.keys(urls).sort()).toEqual(['config.json', ...model.shards.map((s) => s.file)].sort());
      for (const [file, url] of Object.entries(urls))
        expect(url().href).toBe(new URL(`${model.path}/${file}`, new URL('../../', import.meta.url)).href);
    }
  });

  it('a packaged file that a bundler made a script of is a typed error with the one-line fix (Parcel does it to JSON)', async () => {
    for (const url of [
      'https://app.test/config.3311c1bc.json',
      'https://app.test/assets/model-BrKG6zHG.safetensors',
      'data:application/json;base64,e30=',
    ]) {
      expect(emittedFile(url.includes('model') ? 'model.safetensors' : 'config.json', new URL(url)).href).toBe(url);
    }
    const e = await pgmError(() => emittedFile('config.json', new URL('https://app.test/config.dcbf4a47.js')));
    expect(e.code).toBe('io');
    expect(e.message).toContain('config.dcbf4a47.js');
    expect(e.message).toContain(PARCEL_FIX);
    expect(JSON.parse(PARCEL_FIX.slice('.parcelrc: '.length))).toMatchObject({ extends: '@parcel/config-default' });
  });
});

describe('preprocess (the #if switches resolved per pipeline)', () => {
  const source = (code: string) => ({ name: 'test.wgsl', code });

  it('keeps the taken branches, nested, and prepends numeric defines as consts', () => {
    const code = [
      'a',
      '#if X',
      'x',
      '#if !Y',
      'x-not-y',
      '#else',
      'x-y',
      '#endif',
      '#else',
      'not-x',
      '#endif',
      'b',
    ].join('\n');
    expect(preprocess(source(code), { X: true, Y: false, N: 3, S: 0.5 })).toBe(
      ['const N = 3;', 'const S = 5e-1;', 'a', 'x', 'x-not-y', 'b'].join('\n'),
    );
    expect(preprocess(source(code), { X: true, Y: true })).toBe(['a', 'x', 'x-y', 'b'].join('\n'));
    expect(preprocess(source(code))).toBe(['a', 'not-x', 'b'].join('\n'));
  });

  it('#for repeats its lines with the word as 0u, 1u, ..., by a literal or numeric define, before the switches', () => {
    const code = [
      'a',
      '#for i N',
      'x[i] = xi + i;',
      '#if X',
      'y[i];',
      '#endif',
      '#endfor',
      '#for j 2',
      'z[j];',
      '#endfor',
    ].join('\n');
    expect(preprocess(source(code), { N: 3, X: true })).toBe(
      [
        'const N = 3;',
        'a',
        'x[0u] = xi + 0u;',
        'y[0u];',
        'x[1u] = xi + 1u;',
        'y[1u];',
        'x[2u] = xi + 2u;',
        'y[2u];',
        'z[0u];',
        'z[1u];',
      ].join('\n'),
    );
    expect(preprocess(source(code), { N: 0 })).toBe(['const N = 0;', 'a', 'z[0u];', 'z[1u];'].join('\n'));
  });

  it('enable directives come before the numeric defines (WGSL wants them first)', () => {
    expect(preprocess(source('enable subgroups;\n// x\nfn f() {}'), { TM: 4 })).toBe(
      ['enable subgroups;', 'const TM = 4;', '// x', 'fn f() {}'].join('\n'),
    );
  });

  it('unbalanced or unknown directives are typed errors naming the shader', () => {
    for (const code of [
      '#if X\na',
      '#endif',
      '#else',
      '#include "common.wgsl"',
      '#define X 1',
      '#for i N\na\n#endfor',
      '#for i 2\na',
      '#for i 2\n#for j 2\n#endfor\n#endfor',
    ]) {
      expect(() => preprocess(source(code)), code).toThrow(PgmError);
      expect(() => preprocess(source(code)), code).toThrow(/test\.wgsl/);
    }
  });

  it('shader(file) is the bundled source', () => {
    expect(shader('embed.wgsl')).toEqual({ name: 'embed.wgsl', code: WGSL['embed.wgsl'] });
  });
});

describe('the host-shader interface, read off the WGSL (each kernel declares it once)', () => {
  const source = (code: string) => ({ name: 'test.wgsl', code });

  it('reads the names and kinds of bindings 0..n-1 from the declarations', () => {
    const code = [
      '@group(0) @binding(1) var<storage, read> x: array<f32>;',
      '@group(0) @binding(0) var<uniform> p: Params;',
      '@group(0) @binding(2) var<storage,read_write> y: array<f32>; // [batch, L, D]',
    ].join('\n');
    expect(bindings(source(code), code)).toEqual([
      { name: 'p', kind: 'uniform' },
      { name: 'x', kind: 'read' },
      { name: 'y', kind: 'write' },
    ]);
  });

  it('refuses gaps, duplicates, two bindings of one name, other groups and other address spaces', () => {
    for (const code of [
      '@group(0) @binding(1) var<uniform> p: P;',
      '@group(0) @binding(0) var<uniform> p: P;\n@group(0) @binding(0) var<uniform> q: P;',
      '@group(0) @binding(0) var<uniform> p: P;\n@group(0) @binding(1) var<uniform> p: P;',
      '@group(1) @binding(0) var<uniform> p: P;',
      '@group(0) @binding(0) var<workgroup> t: array<f32, 64>;',
    ])
      expect(() => bindings(source(code), code), code).toThrow(PgmError);
  });

  it("reads a uniform struct's fields in order, comments skipped; refuses a missing struct or a non-scalar field", () => {
    const code = 'struct Params {\n  K: u32,\n  // the scale\n  scale: f32,  // 1 / sqrt(dh)\n  shift: i32\n}';
    expect(structFields(source(code), code, 'Params')).toEqual([
      { name: 'K', type: 'u32' },
      { name: 'scale', type: 'f32' },
      { name: 'shift', type: 'i32' },
    ]);
    expect(() => structFields(source(code), code, 'Window')).toThrow(/test\.wgsl declares no struct Window/);
    const vector = 'struct Params {\n  at: vec2<u32>,\n}';
    expect(() => structFields(source(vector), vector, 'Params')).toThrow(/at: vec2<u32>.*not a u32, i32 or f32 scalar/);
  });

  it('reads constants and @workgroup_size as products of literals, constants and numeric defines', () => {
    const code = preprocess(
      source('const TN: u32 = 4u;\nconst BLOCK: u32 = TN * WG;\n@compute @workgroup_size(WG, 2)\nfn main() {}'),
      { WG: 16 },
    );
    expect(constant(source(code), code, 'BLOCK')).toBe(64);
    expect(workgroupSize(source(code), code)).toEqual([16, 2, 1]);
    expect(() => constant(source(code), code, 'BLOCK_ROWS')).toThrow(/declares no const BLOCK_ROWS/);
    const odd = 'const A: u32 = (B + 3u) / 4u;';
    expect(() => constant(source(odd), odd, 'A')).toThrow(/not a product/);
  });

  it('every matmul variant declares its block, flash attention its query tile, thread attention its rows per thread', () => {
    const read = (file: keyof typeof WGSL, defines: Record<string, number | boolean>, name: string) => {
      const code = preprocess(shader(file), defines);
      return constant(shader(file), code, name);
    };
    expect([
      read('matmul.wgsl', { WG_X: 8, WG_Y: 4, TM: 16, COLS8: true }, 'BLOCK_ROWS'),
      read('matmul.wgsl', { WG_X: 8, WG_Y: 4, TM: 16, COLS8: true }, 'BLOCK_COLS'),
    ]).toEqual([64, 64]);
    expect([
      read('matmul.wgsl', { WG_X: 64, WG_Y: 1, TM: 4 }, 'BLOCK_ROWS'),
      read('matmul.wgsl', { WG_X: 64, WG_Y: 1, TM: 4 }, 'BLOCK_COLS'),
    ]).toEqual([4, 256]);
    expect([
      read('matmul_broadcast.wgsl', { TM: 8, WG: 16 }, 'BLOCK_ROWS'),
      read('matmul_broadcast.wgsl', { TM: 8, WG: 16 }, 'BLOCK_COLS'),
    ]).toEqual([8, 64]);
    expect([read('matmul_tiled.wgsl', {}, 'BLOCK_ROWS'), read('matmul_small.wgsl', {}, 'BLOCK_COLS')]).toEqual([
      64, 64,
    ]);
    expect(read('attention_flash.wgsl', { HEAD_DIM: 64, KEY_TILE: 32 }, 'QUERY_TILE')).toBe(64);
    expect(read('attention.wgsl', { HEAD_DIM: 64 }, 'THREAD_ROWS')).toBe(4);
  });

  it('every engine kernel, in every variant switch, starts with dims, lengths (written only under WRITE_LENGTHS) and its params p, a struct of scalars', () => {
    for (const file of Object.keys(WGSL) as (keyof typeof WGSL)[]) {
      const switches = [...new Set([...WGSL[file].matchAll(/^#if !?(\w+)/gm)].map((m) => m[1]))];
      for (let bits = 0; bits < 1 << switches.length; bits++) {
        const counts = [...WGSL[file].matchAll(/^#for \w+ (\w+)/gm)].map((m) => [m[1], 2]);
        const defines = {
          ...Object.fromEntries(counts),
          ...Object.fromEntries(switches.map((name, i) => [name, Boolean(bits & (1 << i))])),
        };
        const code = preprocess(shader(file), defines);
        const declared = bindings(shader(file), code);
        expect(declared.slice(0, 3), `${file} ${JSON.stringify(defines)}`).toEqual([
          { name: 'dims', kind: 'uniform' },
          { name: 'lengths', kind: defines.WRITE_LENGTHS ? 'write' : 'read' },
          { name: 'p', kind: 'uniform' },
        ]);
        expect(structFields(shader(file), code, 'Params').length).toBeGreaterThan(0);
      }
    }
  });
});
