import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { toPlain } from '../../src/convert/checkpoint.js';
import { PickledObject, PyGlobal, TorchTensor, unpickle } from '../../src/convert/pickle.js';
import { glob, pgmError, pk, str, u32, u64 } from './helpers.js';

const DATA = join(import.meta.dirname, 'data');
const load = (bytes: Uint8Array, persistentLoad?: (pid: unknown) => unknown): unknown =>
  unpickle(bytes, { file: 'test.pkl', persistentLoad });

describe('unpickle: CPython pickles, protocols 0-5', () => {
  const corpus = JSON.parse(readFileSync(join(DATA, 'pickles.json'), 'utf8')) as {
    pickles: { protocol: number; hex: string }[];
    expected: unknown;
  };
  it('has all six protocols (regenerate with tests/convert/data/make.py)', () => {
    expect(corpus.pickles.map((p) => p.protocol)).toEqual([0, 1, 2, 3, 4, 5]);
  });
  for (const { protocol, hex } of corpus.pickles) {
    it(`protocol ${protocol}`, () => {
      const value = load(Uint8Array.from(Buffer.from(hex, 'hex')));
      expect(toPlain(value)).toEqual(corpus.expected);
      // Memo sharing: both references are the same object.
      const shared = (value as Map<string, unknown[]>).get('shared')!;
      expect(shared[0]).toBe(shared[1]);
      expect((value as Map<string, unknown>).get('config')).toBeInstanceOf(PickledObject);
    });
  }
});

describe('unpickle: hand-built opcodes', () => {
  it('decodes scalars and containers', () => {
    // PROTO 2, FRAME-less; MARK ... TUPLE; LONG1; BINFLOAT; NEWTRUE; BINBYTES; EMPTY_SET+ADDITEMS; FROZENSET; DUP/POP; POP_MARK
    const bytes = pk(
      0x80,
      4,
      0x95,
      ...u64(0n),
      '(',
      'J',
      ...u32(0xfffffffe),
      'K',
      200,
      'M',
      0x34,
      0x12,
      0x8a,
      2,
      0xff,
      0x7f,
      0x8a,
      1,
      0x80,
      'G',
      0x40,
      0x09,
      0x21,
      0xfb,
      0x54,
      0x44,
      0x2d,
      0x18,
      0x88,
      0x89,
      'N',
      'B',
      ...u32(3),
      1,
      2,
      3,
      'C',
      1,
      9,
      0x96,
      ...u64(1n),
      7,
      0x8f,
      '(',
      'K',
      5,
      'K',
      6,
      0x90,
      0x94,
      '(',
      'K',
      8,
      0x91,
      'K',
      1,
      '2',
      '0',
      '0',
      '(',
      'K',
      9,
      '1',
      'I01\n',
      'I42\n',
      'L-12345678901234567890L\n',
      'F2.5\n',
      "S'a\\nb'\n",
      'Vcaf\\u00e9\n',
      'T',
      ...u32(2),
      'hi',
      'U',
      2,
      'yo',
      'X',
      ...u32(2),
      'ok',
      0x8d,
      ...u64(1n),
      'z',
      't',
      '.',
    );
    const v = load(bytes) as unknown[];
    expect(v[0]).toBe(-2);
    expect(v.slice(1, 5)).toEqual([200, 0x1234, 0x7fff, -128]);
    expect(v[5]).toBeCloseTo(Math.PI, 15);
    expect(v.slice(6, 9)).toEqual([true, false, null]);
    expect(v.slice(9, 12)).toEqual([Uint8Array.of(1, 2, 3), Uint8Array.of(9), Uint8Array.of(7)]);
    expect(v[12]).toEqual(new Set([5, 6]));
    expect(v[13]).toEqual(new Set([8]));
    expect(v.slice(14)).toEqual([true, 42, -12345678901234567890n, 2.5, 'a\nb', 'café', 'hi', 'yo', 'ok', 'z']);
    expect(Object.isFrozen(v)).toBe(true);
  });

  it('builds dicts, lists and memo references', () => {
    const bytes = pk(
      0x80,
      2,
      '}',
      'q',
      0,
      '(',
      ...str('a'),
      ']',
      'q',
      1,
      '(',
      'K',
      1,
      'K',
      2,
      'e',
      ...str('b'),
      'h',
      1,
      ...str('c'),
      'j',
      ...u32(1),
      'u',
      ...str('d'),
      'K',
      3,
      's',
      ...str('e'),
      ']',
      'K',
      4,
      'a',
      's',
      '.',
    );
    const m = load(bytes) as Map<string, unknown>;
    expect([...m.keys()]).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(m.get('a')).toEqual([1, 2]);
    expect(m.get('b')).toBe(m.get('a'));
    expect(m.get('c')).toBe(m.get('a'));
    expect(m.get('e')).toEqual([4]);
  });

  it('rebuilds torch tensors and OrderedDicts through allowlisted globals, without executing anything', () => {
    const pid = pk('(', ...str('storage'), glob('torch', 'HalfStorage'), ...str('0'), ...str('cuda:0'), 'K', 6, 't');
    const tensor = pk(
      glob('torch._utils', '_rebuild_tensor_v2'),
      '(',
      ...pid,
      'Q',
      'K',
      0,
      'K',
      2,
      'K',
      3,
      0x86,
      'K',
      3,
      'K',
      1,
      0x86,
      0x89,
      glob('collections', 'OrderedDict'),
      ')',
      'R',
      't',
      'R',
    );
    const bytes = pk(
      0x80,
      2,
      glob('collections', 'OrderedDict'),
      ')',
      'R',
      ...str('w'),
      ...tensor,
      's',
      '}',
      ...str('version'),
      'K',
      1,
      's',
      'b',
      '.',
    );
    const pids: unknown[] = [];
    const m = load(bytes, (p) => (pids.push(p), 'STORAGE')) as Map<string, unknown>;
    const t = m.get('w') as TorchTensor;
    expect(t).toBeInstanceOf(TorchTensor);
    expect(t.storage).toBe('STORAGE');
    expect([t.shape, t.stride, t.storageOffset]).toEqual([[2, 3], [3, 1], 0]);
    expect(pids[0]).toEqual(['storage', new PyGlobal('torch', 'HalfStorage'), '0', 'cuda:0', 6]);
  });

  it('turns unknown classes into inert objects (NEWOBJ, NEWOBJ_EX, BUILD, dict/list subclasses)', () => {
    const bytes = pk(
      0x80,
      4,
      '(',
      glob('omegaconf.dictconfig', 'DictConfig'),
      ')',
      0x81,
      '}',
      ...str('_content'),
      '}',
      ...str('k'),
      'K',
      5,
      's',
      's',
      'b',
      glob('transformers.tokenization', 'Tok'),
      ')',
      '}',
      0x92,
      'N',
      'b',
      glob('lightning.data', 'AttributeDict'),
      ')',
      0x81,
      ...str('x'),
      'K',
      1,
      's',
      glob('mylib', 'MyList'),
      ')',
      0x81,
      'K',
      1,
      'a',
      ...str('mylib'),
      ...str('Thing'),
      0x93,
      'K',
      3,
      0x85,
      0x81,
      'l',
      '.',
    );
    const [cfg, tok, attr, list, thing] = load(bytes) as PickledObject[];
    expect(cfg.qualname).toBe('omegaconf.dictconfig.DictConfig');
    expect(toPlain(cfg)).toEqual({ k: 5 });
    expect(tok.qualname).toBe('transformers.tokenization.Tok');
    expect(attr.dictItems?.get('x')).toBe(1);
    expect(list.listItems).toEqual([1]);
    expect(thing.args).toEqual([3]);
  });

  it('guards toPlain against cycles and exponential sharing', () => {
    // l = []; l.append(l)
    const cyclic = load(pk(0x80, 2, ']', 'q', 0, 'h', 0, 'a', '.'));
    expect(toPlain(cyclic)).toEqual(['<cycle>']);
    // 40 levels of [prev, prev]: 2^40 leaves if expanded naively.
    const parts: (number | string | number[])[] = [0x80, 2, 'K', 1, 'q', 0, '0'];
    for (let i = 1; i <= 40; i++) parts.push('h', i - 1, 'h', i - 1, 0x86, 'q', i, '0');
    parts.push('h', 40, '.');
    const start = Date.now();
    expect((await_(() => toPlain(load(pk(...parts)))) as Error).message).toMatch(/expands to more than/);
    expect(Date.now() - start).toBeLessThan(5000);
  });
});

function await_(f: () => unknown): unknown {
  try {
    return f();
  } catch (e) {
    return e;
  }
}

describe('unpickle: hostile input', () => {
  const refused = async (bytes: Uint8Array, global: RegExp): Promise<void> => {
    const e = await pgmError(() => load(bytes, () => 'S'));
    expect(e.code).toBe('unsafe-pickle');
    expect(e.message).toMatch(global);
    expect(e.message).toMatch(/refusing to load \(checkpoints are untrusted input\)$/);
  };

  it('refuses os.system via REDUCE (protocol 0) as soon as GLOBAL names it', async () => {
    await refused(
      pk(glob('os', 'system'), "(S'touch /tmp/pgm-pwned'\n", 't', 'R', '.'),
      /test\.pkl: pickle references forbidden global os\.system;/,
    );
  });
  it('refuses builtins.eval, __builtin__.eval, builtins.getattr', async () => {
    await refused(
      pk(0x80, 2, glob('builtins', 'eval'), ...str('1+1'), 0x85, 'R', '.'),
      /forbidden global builtins\.eval/,
    );
    await refused(pk(glob('__builtin__', 'eval'), '.'), /forbidden global __builtin__\.eval/);
    await refused(pk(0x80, 4, ...str('builtins'), ...str('getattr'), 0x93, '.'), /forbidden global builtins\.getattr/);
  });
  it('refuses subprocess.Popen via STACK_GLOBAL and posix.system, nt.system, os.path.join, importlib.import_module', async () => {
    await refused(
      pk(0x80, 4, ...str('subprocess'), ...str('Popen'), 0x93, ']', ...str('id'), 'a', 0x85, 'R', '.'),
      /forbidden global subprocess\.Popen/,
    );
    for (const [m, n] of [
      ['posix', 'system'],
      ['nt', 'system'],
      ['os.path', 'join'],
      ['importlib', 'import_module'],
      ['_codecs', 'decode'],
      ['runpy', 'run_path'],
      ['pickle', 'loads'],
    ]) {
      await refused(pk(glob(m, n), '.'), new RegExp(`forbidden global ${m.replace('.', '\\.')}\\.${n}`));
    }
  });
  it('refuses a forbidden global nested deep inside a legitimate structure', async () => {
    const bytes = pk(
      0x80,
      2,
      '}',
      ...str('state_dict'),
      '}',
      ...str('config'),
      ']',
      '(',
      'K',
      1,
      glob('posix', 'system'),
      ...str('id'),
      0x85,
      'R',
      'e',
      's',
      's',
      '.',
    );
    await refused(bytes, /forbidden global posix\.system/);
  });
  it('refuses calling (REDUCE, INST, OBJ) a class or function outside the allowlist', async () => {
    await refused(
      pk(0x80, 2, glob('mylib', 'make'), ')', 'R', '.'),
      /pickle calls non-allowlisted global mylib\.make \(REDUCE\)/,
    );
    await refused(pk('(', 'imylib\nThing\n', '.'), /non-allowlisted global mylib\.Thing \(INST\)/);
    await refused(pk('(', glob('mylib', 'Thing'), 'o', '.'), /non-allowlisted global mylib\.Thing \(OBJ\)/);
    await refused(
      pk(
        0x80,
        2,
        glob('torch._tensor', '_rebuild_from_type_v2'),
        '(',
        glob('mylib', 'f'),
        glob('torch', 'Tensor'),
        ')',
        '}',
        't',
        'R',
        '.',
      ),
      /non-allowlisted global mylib\.f/,
    );
  });

  it('ends truncated pickles in a typed error, for every prefix', async () => {
    const full = Uint8Array.from(
      Buffer.from(
        (JSON.parse(readFileSync(join(DATA, 'pickles.json'), 'utf8')) as { pickles: { hex: string }[] }).pickles[4].hex,
        'hex',
      ),
    );
    for (let n = 0; n < full.length; n += 7) {
      const e = await pgmError(() => load(full.subarray(0, n)));
      expect(e.code).toBe('checkpoint');
    }
  });

  it('rejects absurd lengths and nesting without allocating', async () => {
    const cases: [Uint8Array, RegExp][] = [
      [pk(0x80, 4, 0x8d, ...u64(1n << 60n), '.'), /exceeds the pickle size/],
      [pk(0x80, 4, 0x8e, ...u64(1n << 40n), '.'), /exceeds the pickle size/],
      [pk(0x80, 2, 'X', ...u32(0xffffffff), '.'), /needs 4294967295 more bytes/],
      [pk(0x80, 2, 0x8b, ...u32(0x7fffffff), '.'), /more bytes/],
      [pk(0x80, 4, 0x95, ...u64(1n << 20n), 'N', '.'), /exceeds the pickle size/],
      [pk(0x80, 4, 0x95, ...u64(5n), 'N', '.'), /frame of 5 bytes/],
      [pk(0x80, 2, 'h', 3, '.'), /memo key 3/],
      [pk(0x80, 2, 'R', '.'), /stack underflow/],
      [pk(0x80, 2, 'N', 'N', '.'), /STOP with 2 values/],
      [pk(0x80, 9, 'N', '.'), /protocol 9/],
      [pk(0x80, 2, 0xff), /unknown opcode 0xff/],
      [pk(0x80, 2, 0x82, 1, '.'), /EXT1/],
      [pk(0x80, 2, 'e', '.'), /missing MARK/],
      [pk('I', 'x'.repeat(100), '\n', '.'), /bad integer literal/],
    ];
    for (const [bytes, re] of cases) expect((await pgmError(() => load(bytes))).message).toMatch(re);
    const marks = pk(...new Array<number>(70_000).fill(0x28), '.');
    expect((await pgmError(() => load(marks))).message).toMatch(/too many nested MARKs/);
  });
});
