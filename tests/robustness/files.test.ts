/**
 * Hostile files: pickles that reach for code, damaged downloads, and the inputs that
 * fuzzing (scripts/fuzz.ts) found crashing the readers, as fixed regressions.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { Checkpoint } from '../../src/convert/checkpoint.js';
import { convertCheckpoint } from '../../src/convert/convert.js';
import { unpickle } from '../../src/convert/pickle.js';
import { bytesSource } from '../../src/convert/source.js';
import type { ModelDirConfig } from '../../src/weights/config.js';
import type { ManifestModel } from '../../src/weights/manifest.js';
import { loadModel, loadModelFromManifest } from '../../src/weights/load.js';
import { parseSafetensors, sha256Hex } from '../../src/weights/safetensors.js';
import { memoryDir, memoryFiles, trackAllocations } from '../../scripts/fuzz.js';
import { glob, makeZip, pgmError, pk, readAll, str } from '../convert/helpers.js';

const FIXTURE = join(import.meta.dirname, '..', 'fixtures', 'pgm-bf16', 'model.ckpt');
const utf8 = new TextEncoder();
let tmp: string;
beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'pgm-robustness-'));
});
afterAll(() => rm(tmp, { recursive: true, force: true }));

// ------------------------------------------------------------------------------------------
// Pickles

/** Globals a hostile checkpoint may name to run code; each must be refused by name. */
const FORBIDDEN: [string, string][] = [
  ['os', 'system'],
  ['posix', 'system'],
  ['nt', 'system'],
  ['os', 'popen'],
  ['os', 'execv'],
  ['os.path', 'join'],
  ['builtins', 'eval'],
  ['builtins', 'exec'],
  ['builtins', 'compile'],
  ['builtins', '__import__'],
  ['builtins', 'getattr'],
  ['builtins', 'open'],
  ['builtins', 'breakpoint'],
  ['__builtin__', 'eval'],
  ['__builtin__', 'execfile'],
  ['subprocess', 'Popen'],
  ['subprocess', 'check_output'],
  ['subprocess', 'run'],
  ['importlib', 'import_module'],
  ['importlib.util', 'spec_from_file_location'],
  ['shutil', 'rmtree'],
  ['socket', 'create_connection'],
  ['pty', 'spawn'],
  ['ctypes', 'CDLL'],
  ['pickle', 'loads'],
  ['_pickle', 'loads'],
  ['marshal', 'loads'],
  ['runpy', 'run_path'],
  ['webbrowser', 'open'],
  ['sys', 'exit'],
  ['types', 'FunctionType'],
  ['functools', 'partial'],
  ['operator', 'attrgetter'],
  ['code', 'interact'],
  ['asyncio', 'create_subprocess_shell'],
  ['multiprocessing', 'Process'],
  ['io', 'open'],
  ['_codecs', 'decode'],
  ['platform', 'popen'],
  ['timeit', 'timeit'],
  ['pdb', 'run'],
];

/** Globals outside the forbidden modules but not on the allowlist of callables: naming them is data, calling them is refused. */
const NOT_ALLOWLISTED: [string, string][] = [
  ['torch', 'load'],
  ['torch.hub', 'load'],
  ['numpy', 'load'],
  ['numpy.testing._private.utils', 'runstring'],
  ['__main__', 'payload'],
  ['torch.serialization', '_load'],
  ['collections', 'namedtuple'],
  ['pydoc', 'pipepager'],
];

/** Ways a pickle can reach a global and call it (or hand it to something that would). */
const REACHES: Record<string, (m: string, n: string) => Uint8Array> = {
  'GLOBAL + REDUCE': (m, n) => pk(0x80, 2, glob(m, n), ...str('id'), 0x85, 'R', '.'),
  'STACK_GLOBAL + REDUCE': (m, n) => pk(0x80, 4, ...str(m), ...str(n), 0x93, ...str('id'), 0x85, 'R', '.'),
  'STACK_GLOBAL from memo': (m, n) =>
    pk(0x80, 4, ...str(m), 0x94, '0', ...str(n), 0x94, '0', 'h', 0, 'h', 1, 0x93, ')', 'R', '.'),
  'INST (protocol 0)': (m, n) => pk('(', "S'id'\n", `i${m}\n${n}\n`, '.'),
  'OBJ (protocol 1)': (m, n) => pk('(', glob(m, n), "S'id'\n", 'o', '.'),
  NEWOBJ: (m, n) => pk(0x80, 2, glob(m, n), ')', 0x81, '.'),
  'nested in a state_dict': (m, n) =>
    pk(
      0x80,
      2,
      '}',
      ...str('state_dict'),
      '}',
      ...str('w'),
      ']',
      '(',
      glob(m, n),
      ...str('x'),
      0x85,
      'R',
      'e',
      's',
      's',
      '.',
    ),
  '_rebuild_from_type_v2 argument': (m, n) =>
    pk(
      0x80,
      2,
      glob('torch._tensor', '_rebuild_from_type_v2'),
      '(',
      glob(m, n),
      glob('torch', 'Tensor'),
      ')',
      '}',
      't',
      'R',
      '.',
    ),
};

describe('pickles that reach for code are refused by name, and nothing runs', () => {
  const load = (bytes: Uint8Array): unknown => unpickle(bytes, { file: 'evil.pkl', persistentLoad: () => 'storage' });

  for (const [reach, build] of Object.entries(REACHES)) {
    it(`forbidden modules via ${reach}`, async () => {
      for (const [m, n] of FORBIDDEN) {
        const e = await pgmError(() => load(build(m, n)));
        expect([e.code, e.message], `${m}.${n}`).toEqual([
          'unsafe-pickle',
          expect.stringContaining(`global ${m}.${n}`),
        ]);
        expect(e.message).toMatch(/^evil\.pkl: pickle .*; refusing to load \(checkpoints are untrusted input\)$/);
      }
    });
  }

  it('calls of globals outside the allowlist (REDUCE, INST, OBJ, _rebuild_from_type_v2), whatever the module', async () => {
    for (const [m, n] of NOT_ALLOWLISTED) {
      for (const reach of [
        'GLOBAL + REDUCE',
        'STACK_GLOBAL + REDUCE',
        'STACK_GLOBAL from memo',
        'INST (protocol 0)',
        'OBJ (protocol 1)',
        '_rebuild_from_type_v2 argument',
      ]) {
        const e = await pgmError(() => load(REACHES[reach](m, n)));
        expect([e.code, e.message], `${m}.${n} via ${reach}`).toEqual([
          'unsafe-pickle',
          expect.stringContaining(`calls non-allowlisted global ${m}.${n}`),
        ]);
      }
      // Named but never called (NEWOBJ of an unknown class), it stays inert data.
      expect(load(REACHES.NEWOBJ(m, n))).toMatchObject({ module: m, name: n });
    }
  });

  it('a .ckpt whose pickle calls os.system, through `pgm convert`: exit 1 naming the global, no files, no side effect', async () => {
    const marker = join(tmp, 'pwned');
    const pickle = pk(
      0x80,
      2,
      '}',
      ...str('state_dict'),
      glob('os', 'system'),
      ...str(`touch ${marker}`),
      0x85,
      'R',
      's',
      '.',
    );
    const ckpt = join(tmp, 'evil.ckpt');
    await writeFile(
      ckpt,
      makeZip([
        { name: 'evil/data.pkl', data: pickle },
        { name: 'evil/version', data: utf8.encode('3\n') },
      ]),
    );
    const out = join(tmp, 'evil-out');
    const stderr: string[] = [];
    const err = vi.spyOn(console, 'error').mockImplementation((...a: unknown[]) => void stderr.push(a.join(' ')));
    const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
    try {
      expect(await main(['convert', ckpt, out])).toBe(1);
    } finally {
      err.mockRestore();
      log.mockRestore();
    }
    expect(stderr.join('\n')).toBe(
      'pgm: evil.ckpt: pickle references forbidden global os.system; refusing to load (checkpoints are untrusted input)',
    );
    expect(existsSync(marker)).toBe(false);
    expect(existsSync(out) ? await readdir(out) : []).toEqual([]);
    // STACK_GLOBAL of a name outside the forbidden modules, called while building the state_dict:
    const sneaky = pk(
      0x80,
      4,
      '}',
      ...str('state_dict'),
      ...str('torch'),
      ...str('load'),
      0x93,
      ...str('x.pt'),
      0x85,
      'R',
      's',
      '.',
    );
    const e = await pgmError(() =>
      Checkpoint.open(bytesSource(makeZip([{ name: 'a/data.pkl', data: sneaky }]), 'sneaky.ckpt')),
    );
    expect(e.message).toBe(
      'sneaky.ckpt: pickle calls non-allowlisted global torch.load (REDUCE); refusing to load (checkpoints are untrusted input)',
    );
  });
});

// ------------------------------------------------------------------------------------------
// Downloads

describe('damaged downloads are caught by size and sha256 before use, naming the shard', () => {
  let dirConfig: ModelDirConfig;
  let files: Map<string, Uint8Array>;
  beforeAll(async () => {
    const out = memoryDir();
    // f16 in shards of ~20 KB: several files, so the message must name the right one.
    dirConfig = (
      await convertCheckpoint(await Checkpoint.open(bytesSource(readFileSync(FIXTURE), 'pgm-bf16.ckpt')), out, {
        dtype: 'f16',
        shardSize: 20_000,
      })
    ).dirConfig;
    files = out.files;
  });

  /** loadModel over the files with `shard` replaced, every tensor read; counts progress reports. */
  async function loadWith(shard: string, bytes: Uint8Array, config = dirConfig, manifestEntry?: ManifestModel) {
    const served = new Map(files);
    served.set(shard, bytes);
    served.set('config.json', utf8.encode(JSON.stringify(config)));
    const progress: string[] = [];
    const e = await pgmError(() =>
      readAll(
        loadModel(memoryFiles('models/pgm-bf16', served), {
          manifestEntry,
          onProgress: (p) => p.phase === 'verify' && progress.push(p.file!),
        }),
      ),
    );
    return { e, progress };
  }

  it('truncated, altered data, altered header: integrity errors naming the file (the header is never parsed)', async () => {
    const shards = dirConfig.shards;
    expect(shards.length).toBeGreaterThan(2);
    const victim = shards[1].file;
    const good = files.get(victim)!;
    const truncated = await loadWith(victim, good.subarray(0, good.length - 100));
    expect(truncated.e.code).toBe('integrity');
    expect(truncated.e.message).toBe(
      `shard ${victim}: size mismatch (expected ${good.length} bytes, got ${good.length - 100}); delete the cached copy or re-download`,
    );
    expect(truncated.progress).toEqual([shards[0].file, victim]);

    const altered = good.slice();
    altered[altered.length - 3] ^= 0x10;
    const changed = await loadWith(victim, altered);
    expect(changed.e.code).toBe('integrity');
    expect(changed.e.message).toMatch(
      new RegExp(
        `^shard ${victim}: sha256 mismatch \\(expected [0-9a-f]{12}…, got [0-9a-f]{12}…\\); delete the cached copy or re-download$`,
      ),
    );

    // A header that no longer parses: still an integrity error, so the hash is checked first.
    const header = good.slice();
    header[8] = 0x5b;
    expect(() => parseSafetensors(header, victim)).toThrow(/header is not valid JSON/);
    expect((await loadWith(victim, header)).e.code).toBe('integrity');
  });

  it('a shard and config.json changed together still disagree with the manifest entry', async () => {
    const victim = dirConfig.shards[2].file;
    const altered = files.get(victim)!.slice();
    altered[altered.length - 1] ^= 1;
    const sha256 = await sha256Hex(altered);
    const forged = { ...dirConfig, shards: dirConfig.shards.map((s) => (s.file === victim ? { ...s, sha256 } : s)) };
    // Without a manifest the forged directory is self-consistent; with it, it is refused.
    const entry: ManifestModel = {
      id: 'pgm-bf16',
      arch: dirConfig.model.arch,
      path: 'pgm-bf16',
      description: 'test',
      params: 1,
      shards: dirConfig.shards,
      license: 'MIT',
    };
    const { e } = await loadWith(victim, altered, forged, entry);
    expect([e.code, e.message]).toEqual([
      'integrity',
      `shard ${victim}: config.json and the manifest entry pgm-bf16 disagree on it; delete the cached copy or re-download`,
    ]);
  });

  it('the browser path (manifest over fetch): a short response is an integrity error naming the shard', async () => {
    const victim = dirConfig.shards[0].file;
    const manifest = {
      version: 1,
      default: 'm',
      models: [
        {
          id: 'm',
          arch: dirConfig.model.arch,
          path: 'm',
          description: 'test',
          params: 1,
          shards: dirConfig.shards,
          license: 'MIT',
        },
      ],
    };
    const fetchFn = (async (input: string | URL | Request) => {
      const path = new URL(String(input)).pathname;
      if (path === '/weights-manifest.json') return new Response(JSON.stringify(manifest));
      const file = path.replace(/^\/m\//, '');
      const bytes = file === 'config.json' ? utf8.encode(JSON.stringify(dirConfig)) : files.get(file);
      if (!bytes) return new Response('', { status: 404, statusText: 'Not Found' });
      return new Response((file === victim ? bytes.subarray(0, 1000) : bytes) as Uint8Array<ArrayBuffer>);
    }) as typeof fetch;
    const e = await pgmError(() =>
      readAll(loadModelFromManifest('http://models.test/weights-manifest.json', undefined, {}, fetchFn)),
    );
    expect(e.code).toBe('integrity');
    expect(e.message).toMatch(new RegExp(`^shard ${victim}: size mismatch`));
  });
});

// ------------------------------------------------------------------------------------------
// Regressions found by fuzzing

describe('inputs that used to crash a reader end in a PgmError', () => {
  it('a pickled tensor whose size holds a bigint (rank mismatch message)', async () => {
    const bytes = pk(
      0x80,
      2,
      glob('torch._utils', '_rebuild_tensor_v2'),
      '(',
      'N',
      'K',
      0,
      0x8a,
      9,
      1,
      0,
      0,
      0,
      0,
      0,
      0,
      0,
      1,
      0x85,
      ')',
      't',
      'R',
      '.',
    );
    const e = await pgmError(() => unpickle(bytes, { file: 'x.pkl' }));
    expect(e.message).toMatch(/tensor size \[.*\] and stride \[\] differ in rank/);
  });

  it('a checkpoint whose root is a list containing itself', async () => {
    const bytes = pk(0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.');
    const ckpt = await Checkpoint.open(bytesSource(makeZip([{ name: 'a/data.pkl', data: bytes }]), 'cyclic.ckpt'));
    const e = await pgmError(() => convertCheckpoint(ckpt, memoryDir()));
    expect(e.message).toBe('cyclic.ckpt: no state_dict (top-level keys: (((...))))');
  });

  it('deeply nested JSON in a safetensors header, config.json and weights-manifest.json', async () => {
    const deep = `${'['.repeat(200_000)}${']'.repeat(200_000)}`;
    let header = `{"t":{"dtype":"F32","shape":${deep},"data_offsets":[0,0]}}`;
    header += ' '.repeat((8 - (header.length % 8)) % 8);
    const st = new Uint8Array(8 + header.length);
    new DataView(st.buffer).setBigUint64(0, BigInt(header.length), true);
    st.set(utf8.encode(header), 8);
    expect((await pgmError(() => parseSafetensors(st, 'deep.safetensors'))).message).toMatch(
      /^deep\.safetensors: tensor t: bad shape \[\.\.\.\]$/,
    );

    const out = memoryDir();
    await convertCheckpoint(await Checkpoint.open(bytesSource(readFileSync(FIXTURE), 'pgm-bf16.ckpt')), out);
    for (const key of ['hiddenSize', 'arch', 'pNucleus']) {
      const config = new TextDecoder()
        .decode(out.files.get('config.json'))
        .replace(`"${key}": `, `"${key}": ${deep}, "was": `);
      const e = await pgmError(() =>
        loadModel(memoryFiles('deep', new Map([...out.files, ['config.json', utf8.encode(config)]]))),
      );
      expect([e.code, e.message.length < 300]).toEqual(['config', true]);
    }
    const manifest = `{"version":1,"default":null,"models":[{"id":${deep}}]}`;
    const fetchFn = (async () => new Response(manifest)) as unknown as typeof fetch;
    expect(
      (await pgmError(() => loadModelFromManifest('http://models.test/m.json', 'x', {}, fetchFn))).message,
    ).toMatch(/models\[0\]\.id must be a simple name, got \[\.\.\.\]$/);
  });

  it('a config.json claiming 1e308 blocks is refused at once, before any shard is read (listing its parameter names would never end)', async () => {
    const out = memoryDir();
    await convertCheckpoint(await Checkpoint.open(bytesSource(readFileSync(FIXTURE), 'pgm-bf16.ckpt')), out);
    const config = JSON.parse(new TextDecoder().decode(out.files.get('config.json'))) as ModelDirConfig;
    for (const key of ['encoderBlocks', 'decoderBlocks'] as const) {
      const start = performance.now();
      const huge = { ...config, model: { ...config.model, [key]: 1e308 } };
      const e = await pgmError(() =>
        readAll(
          loadModel(memoryFiles('huge', new Map([...out.files, ['config.json', utf8.encode(JSON.stringify(huge))]]))),
        ),
      );
      expect([e.code, e.message]).toEqual([
        'config',
        expect.stringMatching(
          /^huge\/config\.json: the shards declare \d+ bytes, but the model it describes has more parameters than any shards can hold; config\.json does not describe these shards$/,
        ),
      ]);
      expect(performance.now() - start).toBeLessThan(1000);
    }
  });

  it('a deflate entry claiming 1000x its compressed size allocates no more than the data inflates to', async () => {
    const data = randomBytes(1 << 20); // incompressible: deflate stores it, ~1 MiB
    const zip = makeZip([{ name: 'a/data.pkl', data, deflate: true }]);
    // Claim ~1 GB (under DEFLATE's 1032:1 ceiling, so the header check lets it through).
    const claim = 1_000_000_000;
    const dv = new DataView(zip.buffer);
    const cd = dv.getUint32(zip.length - 6, true);
    dv.setUint32(cd + 24, claim, true);
    dv.setUint32(cd + 16, 0, true);
    const tracker = trackAllocations();
    let e;
    try {
      e = await pgmError(() => Checkpoint.open(bytesSource(zip, 'claim.ckpt')));
    } finally {
      tracker.restore();
    }
    expect(e.message).toBe(`claim.ckpt: entry a/data.pkl: inflated to ${data.length} bytes, expected ${claim}`);
    expect(tracker.largest).toBeLessThan(4 * zip.length);
  });
});
