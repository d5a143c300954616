import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pgm } from '../helpers/cli.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CKPT = join(import.meta.dirname, 'data', 'mdlm-edge.ckpt');
let out: string;
beforeAll(async () => {
  out = await mkdtemp(join(tmpdir(), 'pgm-cli-'));
});
afterAll(() => rm(out, { recursive: true, force: true }));

describe('pgm convert', () => {
  it('converts and prints a summary (exit 0)', async () => {
    const r = await pgm('convert', CKPT, join(out, 'a'), '--dtype', 'f16', '--shard-size', '2K');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/arch MDLM, 0\.003M params, V=10 D=8 H=2 C=4 F=12 L=8, 2 blocks/);
    expect(r.stdout).toMatch(
      /weights ema, dtype f16, files: model-00001-of-000\d\d\.safetensors, .*model\.safetensors\.index\.json, config\.json/,
    );
    expect(r.stdout).toMatch(/ignored 1 non-backbone state_dict entry: noise\.sigma/);
    expect(r.stderr).toBe('');
    const raw = await pgm('convert', CKPT, join(out, 'b'), '--no-ema');
    expect(raw.code).toBe(0);
    expect(raw.stdout).toMatch(/weights raw, dtype f32, files: model\.safetensors, config\.json/);
  });

  it('typed errors: exit 1 with a one-line "pgm: ..." message and no stack', async () => {
    for (const [file, re] of [
      [
        join(import.meta.dirname, 'data', 'evil.ckpt'),
        /^pgm: evil\.ckpt: pickle references forbidden global posix\.system; refusing to load/,
      ],
      [join(out, 'missing.ckpt'), /^pgm: .*missing\.ckpt: cannot open \(ENOENT\)$/],
      [join(import.meta.dirname, 'data', 'make.py'), /^pgm: make\.py: not a zip archive/],
    ] as const) {
      const r = await pgm('convert', file, join(out, 'c'));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(re);
      expect(r.stderr).not.toContain('\n');
    }
    expect(existsSync(join(out, 'c', 'config.json'))).toBe(false);
  });

  it('a directory in the way of config.json is an io error naming it, with no temporary left (write errors: tests/convert/replace.test.ts)', async () => {
    const blocked = join(out, 'blocked');
    await mkdir(join(blocked, 'config.json'), { recursive: true });
    const b = await pgm('convert', CKPT, blocked);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(
      /^pgm: .*blocked\/config\.json: cannot rename the finished file into place \(EISDIR: illegal operation on a directory, rename '.*\/\.config\.json\.[0-9a-f]{12}\.partial' -> '.*config\.json'\)$/,
    );
    expect(b.stderr).not.toContain('internal error');
    expect((await readdir(blocked)).filter((f) => f.endsWith('.partial'))).toEqual([]);
  });

  it('usage errors: exit 2', async () => {
    for (const argv of [
      [],
      ['convert'],
      ['convert', CKPT],
      ['convert', CKPT, out, '--dtype', 'bf16'],
      ['convert', CKPT, out, '--shard-size', 'lots'],
      ['convert', CKPT, out, '--bogus'],
      ['frobnicate'],
    ]) {
      const r = await pgm(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^(pgm: |usage: pgm)/);
    }
    const help = await pgm('convert', '--help');
    expect([help.code, help.stdout]).toEqual([0, expect.stringContaining('usage: pgm convert <file.ckpt> <outDir>')]);
  });

  it('runs as a process through the tsx entry point', async () => {
    const run = promisify(execFile);
    const { stdout } = await run(
      join(ROOT, 'node_modules', '.bin', 'tsx'),
      [join(ROOT, 'src', 'cli', 'main.ts'), 'convert', CKPT, join(out, 'd')],
      { cwd: ROOT },
    );
    expect(stdout).toMatch(/arch MDLM/);
    const failed = await run(
      join(ROOT, 'node_modules', '.bin', 'tsx'),
      [join(ROOT, 'src', 'cli', 'main.ts'), 'convert', CKPT],
      { cwd: ROOT },
    ).catch((e: { code: number; stderr: string }) => e);
    expect((failed as { code: number }).code).toBe(2);
  });
});
