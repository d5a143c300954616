/**
 * `pgm convert` into a directory that already holds a model: the new model is written beside
 * the old one and replaces it in one rename of config.json, so that at every instant (checked
 * after every file operation, as a kill there would leave it) the directory loads, as the old
 * model or the new. Stale shards, indexes and temporaries go; temporaries are created under
 * fresh names with O_EXCL, so a planted link is never followed; a write error or Ctrl-C leaves
 * no temporary behind.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Checkpoint } from '../../src/convert/checkpoint.js';
import { convertCheckpoint, type ConvertOptions } from '../../src/convert/convert.js';
import { dirSink } from '../../src/convert/sink-node.js';
import { bytesSource } from '../../src/convert/source.js';
import { loadModelDir } from '../../src/weights/load-node.js';
import { readWeights } from '../../src/weights/host-tensor.js';
import { memoryDir } from '../../scripts/fuzz.js';
import { pgm } from '../helpers/cli.js';
import { pgmError } from './helpers.js';

/** Called after every rename, link, copy, write and removal the code under test makes (when set). */
let afterStep: ((what: string) => Promise<void>) | undefined;
vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:fs/promises')>();
  const watched = <F extends (...args: never[]) => Promise<unknown>>(name: string, f: F) =>
    (async (...args: Parameters<F>) => {
      const r = await f(...args);
      await afterStep?.(
        `${name} ${String(args[0]).split('/').pop()}${args.length > 1 && typeof args[1] === 'string' ? ` -> ${(args[1] as string).split('/').pop()}` : ''}`,
      );
      return r;
    }) as unknown as F;
  return {
    ...real,
    rename: watched('rename', real.rename),
    link: watched('link', real.link),
    copyFile: watched('copyFile', real.copyFile),
    writeFile: watched('writeFile', real.writeFile),
    rm: watched('rm', real.rm),
  };
});

const ROOT = join(import.meta.dirname, '..', '..');
const CKPT = join(import.meta.dirname, 'data', 'mdlm-edge.ckpt');
const ckptBytes = readFileSync(CKPT);
const open = () => Checkpoint.open(bytesSource(ckptBytes, 'mdlm-edge.ckpt'));
/** A model directory loaded whole: config.json, then every shard read and verified (its weights as float32). */
async function loadWhole(dir: string) {
  const opened = await loadModelDir(dir);
  return { ...opened, weights: await readWeights(opened.weights) };
}
let root: string;
beforeAll(async () => {
  root = await fs.mkdtemp(join(tmpdir(), 'pgm-replace-'));
});
afterAll(() => fs.rm(root, { recursive: true, force: true }));

/** The sha256s of the shards a conversion with `opts` writes. */
async function shas(opts: ConvertOptions): Promise<string[]> {
  return (await convertCheckpoint(await open(), memoryDir(), opts)).dirConfig.shards.map((s) => s.sha256);
}

const OLD_AND_NEW: [string, ConvertOptions, ConvertOptions][] = [
  ['one shard over one shard of the same name (the old shard is set aside first)', { dtype: 'f32' }, { dtype: 'f16' }],
  ['one shard over several and their index', { dtype: 'f32', shardSize: 2048 }, { dtype: 'f16' }],
  ['several shards over one', { dtype: 'f16' }, { dtype: 'f32', shardSize: 4096 }],
];

describe('a re-convert replaces the model whole', () => {
  for (const [name, before, after] of OLD_AND_NEW) {
    it(name, async () => {
      const dir = await fs.mkdtemp(join(root, 'dir-'));
      await convertCheckpoint(await open(), await dirSink(dir), before);
      // Leftovers of earlier conversions that were killed: they go too.
      await fs.writeFile(join(dir, '.model.safetensors.0123456789ab.partial'), 'half');
      await fs.writeFile(join(dir, 'model.replaced-0123456789ab.safetensors'), 'old');
      await fs.writeFile(join(dir, 'README.md'), 'not ours: it stays');
      const [oldShas, newShas] = [await shas(before), await shas(after)];
      const seen: string[] = [];
      afterStep = async (what) => {
        afterStep = undefined; // the check's own reads are not steps
        try {
          const loaded = await loadWhole(dir);
          const found = loaded.dirConfig.shards.map((s) => s.sha256);
          seen.push(
            `${what}: ${JSON.stringify(found) === JSON.stringify(newShas) ? 'new' : JSON.stringify(found) === JSON.stringify(oldShas) ? 'old' : 'other'}`,
          );
        } catch (e) {
          seen.push(`${what}: ${(e as Error).message}`);
        } finally {
          afterStep = check;
        }
      };
      const check = afterStep;
      try {
        await convertCheckpoint(await open(), await dirSink(dir), after);
      } finally {
        afterStep = undefined;
      }
      expect(seen.length).toBeGreaterThan(3);
      for (const line of seen) expect(line).toMatch(/: (old|new)$/);
      expect(seen.at(-1)).toMatch(/: new$/);
      // The switch is one rename: old before it, new after it.
      const switched = seen.findIndex((l) => l.endsWith(': new'));
      expect(seen.slice(switched).every((l) => l.endsWith(': new'))).toBe(true);
      expect(seen[switched]).toMatch(/^rename \.config\.json\.[0-9a-f]{12}\.partial -> config\.json: new$/);
      const written = (await convertCheckpoint(await open(), memoryDir(), after)).files;
      expect((await fs.readdir(dir)).sort()).toEqual([...written, 'README.md'].sort());
      expect((await loadWhole(dir)).dirConfig.shards.map((s) => s.sha256)).toEqual(newShas);
    });
  }
});

describe('temporaries', () => {
  it('a link planted at the old predictable temporary names is never followed', async () => {
    const dir = await fs.mkdtemp(join(root, 'planted-'));
    const victim = join(root, 'victim.txt');
    await fs.writeFile(victim, 'precious');
    for (const name of ['model.safetensors.partial', 'config.json.partial', `model.safetensors.${process.pid}.tmp`])
      await fs.symlink(victim, join(dir, name));
    await convertCheckpoint(await open(), await dirSink(dir));
    expect(await fs.readFile(victim, 'utf8')).toBe('precious');
    expect((await loadWhole(dir)).config.arch).toBe('mdlm');
  });

  it('a write error (EFBIG under ulimit -f) is an io error naming the file, and leaves no temporary; the old model still loads', async () => {
    const dir = await fs.mkdtemp(join(root, 'efbig-'));
    await convertCheckpoint(await open(), await dirSink(dir), { dtype: 'f16', shardSize: 1024 });
    const before = (await fs.readdir(dir)).sort();
    const r = await run('bash', [
      '-c',
      `trap '' XFSZ; ulimit -f 8; exec "${process.execPath}" --import tsx src/cli/main.ts convert "${CKPT}" "${dir}"`,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^pgm: .*\/\.model\.safetensors\.[0-9a-f]{12}\.partial: cannot write \(EFBIG: file too large, write\); the file is larger than this file system or the process limit \(ulimit -f\) allows\n$/,
    );
    expect((await fs.readdir(dir)).sort()).toEqual(before);
    expect((await loadWhole(dir)).dirConfig.dtype).toBe('f16');
  });

  it('Ctrl-C (SIGINT) or SIGTERM during a re-convert: exit 130 or 143, temporaries removed, the old model loads', async () => {
    for (const [signal, exit] of [
      ['SIGINT', 130],
      ['SIGTERM', 143],
    ] as const) {
      const dir = await fs.mkdtemp(join(root, 'signal-'));
      await convertCheckpoint(await open(), await dirSink(dir), { dtype: 'f16' });
      const before = (await fs.readdir(dir)).sort();
      const r = await run(process.execPath, [
        '--import',
        'tsx',
        join(import.meta.dirname, 'interrupt-child.ts'),
        CKPT,
        dir,
        signal,
      ]);
      expect({ code: r.code, stderr: r.stderr }).toEqual({ code: exit, stderr: '' });
      expect(r.stdout).toMatch(new RegExp(`^${signal} with \\d+ temporar(y|ies) in the directory\n$`));
      expect((await fs.readdir(dir)).sort()).toEqual(before);
      expect((await loadWhole(dir)).dirConfig.dtype).toBe('f16');
    }
  });

  it('a damaged or half-written directory says to convert again, not to re-download', async () => {
    const dir = await fs.mkdtemp(join(root, 'damaged-'));
    await convertCheckpoint(await open(), await dirSink(dir));
    const shard = join(dir, 'model.safetensors');
    const bytes = await fs.readFile(shard);
    bytes[bytes.length - 1] ^= 1;
    await fs.writeFile(shard, bytes);
    const e = await pgmError(() => loadWhole(dir));
    expect(e.message).toMatch(
      /^shard model\.safetensors: sha256 mismatch .*; the directory holds a damaged or partly written model; convert it again$/,
    );
  });
});

describe('pgm reshard', () => {
  it('rewrites a model directory into shards of another size, the same tensors byte for byte; a damaged shard changes nothing', async () => {
    const dir = await fs.mkdtemp(join(root, 'reshard-'));
    await convertCheckpoint(await open(), await dirSink(dir), { dtype: 'f16', shardSize: 2048 });
    const before = await loadWhole(dir);
    expect(before.dirConfig.shards.length).toBeGreaterThan(2);
    const one = await pgm('reshard', dir);
    expect([one.code, one.stdout, one.stderr]).toEqual([0, `${dir}: model.safetensors, config.json`, '']);
    const after = await loadWhole(dir);
    expect(after.dirConfig.shards.map((s) => s.file)).toEqual(['model.safetensors']);
    expect(after.dirConfig.model).toEqual(before.dirConfig.model);
    for (const [name, t] of before.weights) expect(after.weights.get(name)?.data, name).toEqual(t.data);
    expect((await fs.readdir(dir)).sort()).toEqual(['config.json', 'model.safetensors']);
    const many = await pgm('reshard', dir, '--shard-size', '4K');
    expect(many.code).toBe(0);
    expect((await loadWhole(dir)).dirConfig.shards.length).toBeGreaterThan(1);
    const shard = join(dir, 'model-00001-of-00002.safetensors');
    const bytes = await fs.readFile(shard);
    bytes[bytes.length - 1] ^= 1;
    await fs.writeFile(shard, bytes);
    const listing = (await fs.readdir(dir)).sort();
    const damaged = await pgm('reshard', dir);
    expect([damaged.code, damaged.stderr]).toEqual([
      1,
      expect.stringMatching(
        /^pgm: shard model-00001-of-00002\.safetensors: sha256 mismatch .*; the directory holds a damaged or partly written model; convert it again$/,
      ),
    ]);
    expect((await fs.readdir(dir)).sort()).toEqual(listing);
    expect((await pgm('reshard')).code).toBe(2);
  });
});

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
