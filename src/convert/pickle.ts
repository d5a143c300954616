import { PgmError, brief } from '../errors.js';

/**
 * A restricted unpickler for torch / Lightning checkpoints. It never imports or calls
 * anything: the few callables a checkpoint needs (tensor rebuild, OrderedDict, ...) are
 * implemented here in TypeScript; any other class becomes an inert `PickledObject`.
 *
 * Python values map to: None -> null, bool -> boolean, int -> number (bigint beyond 2^53),
 * float -> number, str -> string, bytes/bytearray -> Uint8Array, list -> Array,
 * tuple -> frozen Array, dict -> Map, set/frozenset -> Set.
 */

/** A reference to a module-level name (class or function), as named by GLOBAL. */
export class PyGlobal {
  constructor(
    readonly module: string,
    readonly name: string,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An instance of a class we do not implement: its constructor arguments and pickled state. */
export class PickledObject {
  state: unknown = undefined;
  /** Items appended to a list subclass. */
  listItems?: unknown[];
  /** Items set on a dict subclass. */
  dictItems?: Map<unknown, unknown>;
  constructor(
    readonly module: string,
    readonly name: string,
    readonly args: readonly unknown[] = [],
    readonly kwargs?: Map<unknown, unknown>,
  ) {}
  get qualname(): string {
    return `${this.module}.${this.name}`;
  }
}

export type TorchDtype =
  'float64' | 'float32' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const TORCH_DTYPE_SIZE: Record<TorchDtype, number> = {
  float64: 8,
  float32: 4,
  float16: 2,
  bfloat16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

const STORAGE_DTYPES: Record<string, TorchDtype> = {
  DoubleStorage: 'float64',
  FloatStorage: 'float32',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
  UntypedStorage: 'uint8',
};

const DTYPE_NAMES: Record<string, TorchDtype> = {
  float64: 'float64',
  double: 'float64',
  float32: 'float32',
  float: 'float32',
  float16: 'float16',
  half: 'float16',
  bfloat16: 'bfloat16',
  int64: 'int64',
  long: 'int64',
  int32: 'int32',
  int: 'int32',
  int16: 'int16',
  short: 'int16',
  int8: 'int8',
  uint8: 'uint8',
  bool: 'bool',
};

/** The element type named by a storage class (`torch.FloatStorage`) or dtype (`torch.float16`) global. */
export function torchDtypeOf(g: unknown): TorchDtype | undefined {
  if (!(g instanceof PyGlobal)) return undefined;
  if (g.module === 'torch' || g.module === 'torch.storage' || g.module === 'torch.cuda') {
    return STORAGE_DTYPES[g.name] ?? (g.module === 'torch' ? DTYPE_NAMES[g.name] : undefined);
  }
  return undefined;
}

/** A tensor as pickled by torch: a view (offset, shape, stride in elements) of a storage. */
export class TorchTensor {
  constructor(
    /** Whatever `persistentLoad` returned for the storage's persistent id. */
    readonly storage: unknown,
    readonly storageOffset: number,
    readonly shape: readonly number[],
    readonly stride: readonly number[],
  ) {}
}

/** A numpy dtype, enough to decode numpy scalars. */
export class NumpyDtype {
  byteOrder = '<';
  constructor(readonly code: string) {}
}

export interface UnpickleOptions {
  /** File name used in error messages. */
  file: string;
  /** Resolves a persistent id (torch: `('storage', type, key, location, numel)`). */
  persistentLoad?: (pid: unknown) => unknown;
}

/** Modules no checkpoint has a reason to name; matched on the module and its parents. */
const FORBIDDEN_MODULES = new Set([
  'os',
  'posix',
  'nt',
  'posixpath',
  'ntpath',
  'subprocess',
  'sys',
  'importlib',
  'pickle',
  '_pickle',
  'pickletools',
  'shutil',
  'socket',
  'runpy',
  'code',
  'codeop',
  'pty',
  'marshal',
  'ctypes',
  '_ctypes',
  'multiprocessing',
  'threading',
  '_thread',
  'signal',
  'tempfile',
  'io',
  '_io',
  'webbrowser',
  'asyncio',
  'types',
  'functools',
  'operator',
  '_operator',
  'inspect',
  'gc',
  'platform',
  'glob',
  'fileinput',
  'zipimport',
  'pdb',
  'bdb',
  'timeit',
  'trace',
  'cProfile',
  'profile',
  'http',
  'urllib',
  'ftplib',
  'smtplib',
  'telnetlib',
  'requests',
  'shelve',
  'dbm',
  'sqlite3',
  'select',
  'selectors',
  'mmap',
  'resource',
  'pwd',
  'grp',
  'commands',
  'popen2',
  'distutils',
  'setuptools',
  'pip',
  'ensurepip',
  'venv',
  'site',
  'atexit',
  'exec',
  'eval',
  'compileall',
  'py_compile',
]);
/** The only builtins a checkpoint may name (types used as data or rebuilt below). */
const ALLOWED_BUILTINS = new Set([
  'set',
  'frozenset',
  'slice',
  'bytearray',
  'complex',
  'dict',
  'list',
  'tuple',
  'object',
  'int',
  'float',
  'str',
  'bytes',
  'bool',
  // Protocol-2 pickles name Python 3's int and str by their Python 2 names (OmegaConf's
  // ListConfig stores `int` as its key type, so every config with a list carries `long`).
  'long',
  'unicode',
]);

type Callable = (args: readonly unknown[], bad: (why: string) => never) => unknown;

const tupleArg = (args: readonly unknown[], i: number, bad: (why: string) => never, what: string): unknown[] => {
  const v = args[i];
  if (!Array.isArray(v)) bad(`${what} must be a tuple`);
  return v as unknown[];
};
const intArg = (args: readonly unknown[], i: number, bad: (why: string) => never, what: string): number => {
  const v = args[i];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    bad(`${what} must be a non-negative integer, got ${String(v)}`);
  return v as number;
};

function rebuildTensor(args: readonly unknown[], bad: (why: string) => never): TorchTensor {
  if (args.length < 4) bad(`_rebuild_tensor expects at least 4 arguments, got ${args.length}`);
  const offset = intArg(args, 1, bad, 'tensor storage offset');
  const shape = tupleArg(args, 2, bad, 'tensor size');
  const stride = tupleArg(args, 3, bad, 'tensor stride');
  if (shape.length !== stride.length) bad(`tensor size ${brief(shape)} and stride ${brief(stride)} differ in rank`);
  for (const v of [...shape, ...stride]) {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
      bad(`tensor size/stride entries must be non-negative integers`);
  }
  return new TorchTensor(args[0], offset, shape as number[], stride as number[]);
}

function reconstruct(
  cls: unknown,
  args: readonly unknown[],
  bad: (why: string) => never,
  kwargs?: Map<unknown, unknown>,
): unknown {
  if (!(cls instanceof PyGlobal)) bad('object construction from a value that is not a class');
  const g = cls as PyGlobal;
  const make = NEW_IMPLS[g.qualname];
  if (make) return make(args, bad);
  return new PickledObject(g.module, g.name, args, kwargs);
}

/** Classes instantiated through NEWOBJ that we materialize as JS values. */
const NEW_IMPLS: Record<string, Callable> = {
  'collections.OrderedDict': () => new Map(),
  'collections.defaultdict': () => new Map(),
  'builtins.dict': () => new Map(),
  'builtins.list': () => [],
  'builtins.set': () => new Set(),
  'builtins.object': () => new PickledObject('builtins', 'object'),
};

function bytesOf(v: unknown, bad: (why: string) => never): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === 'string') return latin1(v, bad);
  return bad('expected bytes');
}

function latin1(s: string, bad: (why: string) => never): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) bad('latin-1 string holds a character above U+00FF');
    out[i] = c;
  }
  return out;
}

function iterableItems(v: unknown, bad: (why: string) => never): unknown[] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v;
  if (v instanceof Set) return [...v];
  if (v instanceof Map) return [...v.keys()];
  return bad('expected an iterable');
}

function numpyScalar(args: readonly unknown[], bad: (why: string) => never): unknown {
  const dtype = args[0];
  if (!(dtype instanceof NumpyDtype)) return new PickledObject('numpy.core.multiarray', 'scalar', args);
  const raw = bytesOf(args[1], bad);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const le = dtype.byteOrder !== '>';
  const code = dtype.code.replace(/^[<>|=]/, '');
  const need = (n: number): void => {
    if (raw.length !== n) bad(`numpy scalar of dtype ${dtype.code} has ${raw.length} bytes, expected ${n}`);
  };
  switch (code) {
    case 'f8':
      need(8);
      return dv.getFloat64(0, le);
    case 'f4':
      need(4);
      return dv.getFloat32(0, le);
    case 'i8': {
      need(8);
      const v = dv.getBigInt64(0, le);
      return Number.isSafeInteger(Number(v)) ? Number(v) : v;
    }
    case 'u8': {
      need(8);
      const v = dv.getBigUint64(0, le);
      return Number.isSafeInteger(Number(v)) ? Number(v) : v;
    }
    case 'i4':
      need(4);
      return dv.getInt32(0, le);
    case 'u4':
      need(4);
      return dv.getUint32(0, le);
    case 'i2':
      need(2);
      return dv.getInt16(0, le);
    case 'u2':
      need(2);
      return dv.getUint16(0, le);
    case 'i1':
      need(1);
      return dv.getInt8(0);
    case 'u1':
      need(1);
      return dv.getUint8(0);
    case 'b1':
      need(1);
      return raw[0] !== 0;
    default:
      return new PickledObject('numpy.core.multiarray', 'scalar', args);
  }
}

/** Callables that REDUCE may invoke, implemented in TypeScript. */
const CALLABLES: Record<string, Callable> = {
  'torch._utils._rebuild_tensor': rebuildTensor,
  'torch._utils._rebuild_tensor_v2': rebuildTensor,
  'torch._utils._rebuild_parameter': (args, bad) => {
    if (!(args[0] instanceof TorchTensor)) bad('_rebuild_parameter expects a tensor');
    return args[0];
  },
  'torch._utils._rebuild_parameter_with_state': (args, bad) => {
    if (!(args[0] instanceof TorchTensor)) bad('_rebuild_parameter_with_state expects a tensor');
    return args[0];
  },
  'torch._tensor._rebuild_from_type_v2': (args, bad) => {
    // (func, type, args, state): rebuild through `func`, which must itself be allowlisted; the subclass is dropped.
    const func = args[0];
    const impl = func instanceof PyGlobal ? CALLABLES[func.qualname] : undefined;
    if (!impl) return bad('_rebuild_from_type_v2 without a rebuild function');
    return impl(tupleArg(args, 2, bad, '_rebuild_from_type_v2 arguments'), bad);
  },
  'torch.Size': (args, bad) => Object.freeze([...tupleArg(args, 0, bad, 'torch.Size argument')]),
  'torch.device': (args) => args.map(String).join(':'),
  'collections.OrderedDict': (args, bad) => new Map(args.length ? pairs(args[0], bad) : []),
  'collections.defaultdict': () => new Map(),
  'copyreg._reconstructor': (args, bad) => {
    const obj = reconstruct(args[0], [], bad);
    if (obj instanceof PickledObject && args[2] !== null && args[2] !== undefined) obj.state = args[2];
    return obj;
  },
  'copyreg.__newobj__': (args, bad) => reconstruct(args[0], args.slice(1), bad),
  'copyreg.__newobj_ex__': (args, bad) =>
    reconstruct(
      args[0],
      tupleArg(args, 1, bad, '__newobj_ex__ args'),
      bad,
      args[2] instanceof Map ? args[2] : undefined,
    ),
  '_codecs.encode': (args, bad) => {
    if (typeof args[0] !== 'string') bad('_codecs.encode expects a string');
    const enc = String(args[1] ?? 'utf-8')
      .toLowerCase()
      .replace(/[-_]/g, '');
    if (enc === 'latin1' || enc === 'iso88591') return latin1(args[0] as string, bad);
    if (enc === 'utf8') return new TextEncoder().encode(args[0] as string);
    return bad(`_codecs.encode with unsupported encoding ${String(args[1])}`);
  },
  'builtins.set': (args, bad) => new Set(iterableItems(args[0], bad)),
  'builtins.frozenset': (args, bad) => new Set(iterableItems(args[0], bad)),
  'builtins.slice': (args) => new PickledObject('builtins', 'slice', args),
  'builtins.complex': (args) => new PickledObject('builtins', 'complex', args),
  'builtins.bytes': makeBytes,
  'builtins.bytearray': makeBytes,
  'numpy.dtype': (args) => new NumpyDtype(String(args[0])),
  'numpy.core.multiarray.scalar': numpyScalar,
  'numpy._core.multiarray.scalar': numpyScalar,
  // ndarray reconstruction: kept inert (its data arrives later through BUILD).
  'numpy.core.multiarray._reconstruct': (args) => new PickledObject('numpy', 'ndarray', args),
  'numpy._core.multiarray._reconstruct': (args) => new PickledObject('numpy', 'ndarray', args),
};

/** bytes()/bytearray(): empty, from (str, encoding), from a list of ints or from bytes. */
function makeBytes(args: readonly unknown[], bad: (why: string) => never): Uint8Array {
  if (args.length === 0) return new Uint8Array(0);
  if (typeof args[0] === 'string') return CALLABLES['_codecs.encode'](args, bad) as Uint8Array;
  if (Array.isArray(args[0])) {
    if (!args[0].every((b) => Number.isInteger(b) && b >= 0 && b < 256)) bad('bytes() from a list that is not bytes');
    return Uint8Array.from(args[0] as number[]);
  }
  return bytesOf(args[0], bad).slice();
}

function pairs(v: unknown, bad: (why: string) => never): [unknown, unknown][] {
  if (v instanceof Map) return [...v.entries()];
  return iterableItems(v, bad).map((p) => {
    if (!Array.isArray(p) || p.length !== 2) bad('expected (key, value) pairs');
    return p as [unknown, unknown];
  });
}

// Limits. Every opcode consumes at least one byte, so work is linear in the pickle size;
// these bound memory for hostile input that is still small.
const MAX_STACK = 1 << 20;
const MAX_MARKS = 1 << 16;
const MAX_MEMO = 1 << 22;
const MAX_LINE = 1 << 16;
const MAX_LONG_BYTES = 1024;

const utf8 = new TextDecoder('utf-8');

/** Unpickle `bytes` under the restrictions described above. */
export function unpickle(bytes: Uint8Array, opts: UnpickleOptions): unknown {
  const { file } = opts;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  let opPos = 0;
  let stack: unknown[] = [];
  const metastack: unknown[][] = [];
  const memo = new Map<number, unknown>();
  // One object per opcode at most; a pickle cannot legitimately hold more objects than bytes.
  let objectBudget = bytes.length + 16;

  const bad = (why: string): never => {
    throw new PgmError('checkpoint', `${file}: corrupt or unsupported pickle: ${why} (opcode at byte ${opPos})`);
  };
  const unsafe = (g: string, how?: string): never => {
    const what = how ? `calls non-allowlisted global ${g} (${how})` : `references forbidden global ${g}`;
    throw new PgmError('unsafe-pickle', `${file}: pickle ${what}; refusing to load (checkpoints are untrusted input)`);
  };
  const need = (n: number): void => {
    if (n < 0 || pos + n > bytes.length)
      bad(`needs ${n} more bytes but only ${bytes.length - pos} remain (truncated pickle)`);
  };
  const u8 = (): number => {
    need(1);
    return bytes[pos++];
  };
  const u16 = (): number => {
    need(2);
    const v = dv.getUint16(pos, true);
    pos += 2;
    return v;
  };
  const u32 = (): number => {
    need(4);
    const v = dv.getUint32(pos, true);
    pos += 4;
    return v;
  };
  const i32 = (): number => {
    need(4);
    const v = dv.getInt32(pos, true);
    pos += 4;
    return v;
  };
  const u64 = (): number => {
    need(8);
    const v = dv.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(bytes.length)) bad(`length ${v} exceeds the pickle size`);
    return Number(v);
  };
  const take = (n: number): Uint8Array => {
    need(n);
    const b = bytes.subarray(pos, pos + n);
    pos += n;
    return b;
  };
  const line = (): string => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0 || end - pos > MAX_LINE) bad('unterminated text argument');
    let s = '';
    for (let i = pos; i < end; i++) s += String.fromCharCode(bytes[i]);
    pos = end + 1;
    return s;
  };
  const push = (v: unknown): void => {
    if (stack.length >= MAX_STACK) bad('stack too deep');
    stack.push(v);
  };
  const created = <T>(v: T): T => {
    if (--objectBudget < 0) bad('too many objects for the pickle size');
    return v;
  };
  const pop = (): unknown => {
    if (stack.length === 0) bad('stack underflow');
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) bad('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const items = stack;
    const prev = metastack.pop();
    if (!prev) bad('missing MARK');
    stack = prev!;
    return items;
  };
  const memoPut = (key: number, v: unknown): void => {
    if (!memo.has(key) && memo.size >= MAX_MEMO) bad('memo too large');
    memo.set(key, v);
  };
  const memoGet = (key: number): unknown => {
    if (!memo.has(key)) bad(`memo key ${key} was never stored`);
    return memo.get(key);
  };
  const toInt = (v: bigint): number | bigint =>
    v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  const decodeLong = (b: Uint8Array): number | bigint => {
    if (b.length === 0) return 0;
    if (b.length > MAX_LONG_BYTES) bad(`integer of ${b.length} bytes`);
    let v = 0n;
    for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]);
    if (b[b.length - 1] & 0x80) v -= 1n << BigInt(8 * b.length);
    return toInt(v);
  };
  const parseIntText = (s: string): number | bigint => {
    const t = s.endsWith('L') ? s.slice(0, -1) : s;
    if (!/^[+-]?\d{1,4300}$/.test(t)) bad(`bad integer literal ${JSON.stringify(s.slice(0, 40))}`);
    return toInt(BigInt(t));
  };
  const resolveGlobal = (module: string, name: string): PyGlobal => {
    const qual = `${module}.${name}`;
    const parts = module.split('.');
    const root = parts[0];
    if (root === 'builtins' || root === '__builtin__') {
      if (parts.length !== 1 || !ALLOWED_BUILTINS.has(name)) unsafe(qual);
      return created(new PyGlobal('builtins', name));
    }
    if (root === '_codecs' && name !== 'encode') unsafe(qual);
    // Protocols 0-2 name Python 3 modules by their Python 2 names (fix_imports).
    if (module === 'copy_reg') return created(new PyGlobal('copyreg', name));
    if (parts.some((_, i) => FORBIDDEN_MODULES.has(parts.slice(0, i + 1).join('.')))) unsafe(qual);
    if (!/^[A-Za-z_][\w.]*$/.test(module) || !/^[A-Za-z_][\w.]*$/.test(name))
      bad(`malformed global name ${JSON.stringify(qual)}`);
    return created(new PyGlobal(module, name));
  };
  const call = (callable: unknown, args: readonly unknown[], how: string): unknown => {
    if (!(callable instanceof PyGlobal)) bad(`${how} of a value that is not a global`);
    const g = callable as PyGlobal;
    const impl = CALLABLES[g.qualname];
    if (!impl) unsafe(g.qualname, how);
    // _rebuild_from_type_v2 calls its first argument: hold that to the same allowlist.
    const inner = g.qualname === 'torch._tensor._rebuild_from_type_v2' ? args[0] : undefined;
    if (inner instanceof PyGlobal && !CALLABLES[inner.qualname]) unsafe(inner.qualname, how);
    return created(impl(args, bad));
  };
  const setItems = (target: unknown, kv: unknown[]): void => {
    if (kv.length % 2 !== 0) bad('SETITEMS with an odd number of items');
    let map: Map<unknown, unknown>;
    if (target instanceof Map) map = target;
    else if (target instanceof PickledObject) map = target.dictItems ??= new Map();
    else return bad('SETITEM on a value that is not a dict');
    for (let i = 0; i < kv.length; i += 2) map.set(kv[i], kv[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]): void => {
    let list: unknown[];
    if (Array.isArray(target) && !Object.isFrozen(target)) list = target;
    else if (target instanceof PickledObject) list = target.listItems ??= [];
    else return bad('APPEND on a value that is not a list');
    for (const it of items) list.push(it);
  };
  const addItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Set)) bad('ADDITEMS on a value that is not a set');
    for (const it of items) (target as Set<unknown>).add(it);
  };
  const build = (obj: unknown, state: unknown): void => {
    if (obj instanceof PickledObject) {
      if (obj.state instanceof Map && state instanceof Map) for (const [k, v] of state) obj.state.set(k, v);
      else obj.state = state;
    } else if (obj instanceof NumpyDtype) {
      if (Array.isArray(state) && typeof state[1] === 'string') obj.byteOrder = state[1];
    }
    // State on dicts (OrderedDict._metadata), tensors and the like carries nothing we need.
  };

  for (;;) {
    opPos = pos;
    const op = u8();
    switch (op) {
      case 0x80: {
        // PROTO
        const v = u8();
        if (v > 5) bad(`pickle protocol ${v} is newer than 5`);
        break;
      }
      case 0x95: {
        // FRAME: a length hint only
        const n = u64();
        if (pos + n > bytes.length) bad(`frame of ${n} bytes runs past the end (truncated pickle)`);
        break;
      }
      case 0x2e: {
        // STOP
        if (metastack.length) bad('STOP inside a MARK');
        if (stack.length !== 1) bad(`STOP with ${stack.length} values on the stack`);
        return stack[0];
      }
      case 0x28: // MARK
        if (metastack.length >= MAX_MARKS) bad('too many nested MARKs');
        metastack.push(stack);
        stack = [];
        break;
      case 0x30:
        pop();
        break; // POP
      case 0x31:
        popMark();
        break; // POP_MARK
      case 0x32:
        push(top());
        break; // DUP
      case 0x4e:
        push(null);
        break; // NONE
      case 0x88:
        push(true);
        break; // NEWTRUE
      case 0x89:
        push(false);
        break; // NEWFALSE
      case 0x4a:
        push(i32());
        break; // BININT
      case 0x4b:
        push(u8());
        break; // BININT1
      case 0x4d:
        push(u16());
        break; // BININT2
      case 0x8a:
        push(decodeLong(take(u8())));
        break; // LONG1
      case 0x8b: {
        // LONG4
        const n = i32();
        if (n < 0) bad('negative LONG4 length');
        push(decodeLong(take(n)));
        break;
      }
      case 0x49: {
        // INT (text)
        const s = line();
        push(s === '01' ? true : s === '00' ? false : parseIntText(s));
        break;
      }
      case 0x4c:
        push(parseIntText(line()));
        break; // LONG (text)
      case 0x46: {
        // FLOAT (text)
        const s = line().trim();
        const v = Number(s);
        if (Number.isNaN(v) && !/^[+-]?nan$/i.test(s)) bad(`bad float literal ${JSON.stringify(s.slice(0, 40))}`);
        push(v);
        break;
      }
      case 0x47: {
        need(8);
        push(dv.getFloat64(pos, false));
        pos += 8;
        break;
      } // BINFLOAT (big-endian)
      case 0x58:
        push(created(utf8.decode(take(u32()))));
        break; // BINUNICODE
      case 0x8c:
        push(created(utf8.decode(take(u8()))));
        break; // SHORT_BINUNICODE
      case 0x8d:
        push(created(utf8.decode(take(u64()))));
        break; // BINUNICODE8
      case 0x56:
        push(created(rawUnicodeEscape(line(), bad)));
        break; // UNICODE (text)
      case 0x54: {
        // BINSTRING
        const n = i32();
        if (n < 0) bad('negative BINSTRING length');
        push(created(utf8.decode(take(n))));
        break;
      }
      case 0x55:
        push(created(utf8.decode(take(u8()))));
        break; // SHORT_BINSTRING
      case 0x53:
        push(created(pyStringLiteral(line(), bad)));
        break; // STRING (text)
      case 0x42:
        push(created(take(u32()).slice()));
        break; // BINBYTES
      case 0x43:
        push(created(take(u8()).slice()));
        break; // SHORT_BINBYTES
      case 0x8e:
        push(created(take(u64()).slice()));
        break; // BINBYTES8
      case 0x96:
        push(created(take(u64()).slice()));
        break; // BYTEARRAY8
      case 0x98:
      case 0x99:
        break; // READONLY_BUFFER / READWRITE_BUFFER: no-ops on in-band data
      case 0x97:
        bad('out-of-band buffers (NEXT_BUFFER) are not supported');
        break;
      case 0x7d:
        push(created(new Map()));
        break; // EMPTY_DICT
      case 0x5d:
        push(created([]));
        break; // EMPTY_LIST
      case 0x29:
        push(Object.freeze([]));
        break; // EMPTY_TUPLE
      case 0x8f:
        push(created(new Set()));
        break; // EMPTY_SET
      case 0x85:
        push(created(Object.freeze([pop()])));
        break; // TUPLE1
      case 0x86: {
        const b = pop();
        const a = pop();
        push(created(Object.freeze([a, b])));
        break;
      } // TUPLE2
      case 0x87: {
        const c = pop();
        const b = pop();
        const a = pop();
        push(created(Object.freeze([a, b, c])));
        break;
      } // TUPLE3
      case 0x74:
        push(created(Object.freeze(popMark())));
        break; // TUPLE
      case 0x6c:
        push(created(popMark()));
        break; // LIST
      case 0x64: {
        // DICT
        const kv = popMark();
        const m = created(new Map());
        setItems(m, kv);
        push(m);
        break;
      }
      case 0x91:
        push(created(new Set(popMark())));
        break; // FROZENSET
      case 0x61: {
        const v = pop();
        appendItems(top(), [v]);
        break;
      } // APPEND
      case 0x65: {
        const items = popMark();
        appendItems(top(), items);
        break;
      } // APPENDS
      case 0x73: {
        const v = pop();
        const k = pop();
        setItems(top(), [k, v]);
        break;
      } // SETITEM
      case 0x75: {
        const kv = popMark();
        setItems(top(), kv);
        break;
      } // SETITEMS
      case 0x90: {
        const items = popMark();
        addItems(top(), items);
        break;
      } // ADDITEMS
      case 0x71:
        memoPut(u8(), top());
        break; // BINPUT
      case 0x72:
        memoPut(u32(), top());
        break; // LONG_BINPUT
      case 0x70:
        memoPut(Number(parseIntText(line())), top());
        break; // PUT (text)
      case 0x94:
        memoPut(memo.size, top());
        break; // MEMOIZE
      case 0x68:
        push(memoGet(u8()));
        break; // BINGET
      case 0x6a:
        push(memoGet(u32()));
        break; // LONG_BINGET
      case 0x67:
        push(memoGet(Number(parseIntText(line()))));
        break; // GET (text)
      case 0x63: {
        // GLOBAL
        const module = line();
        const name = line();
        push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') bad('STACK_GLOBAL with non-string names');
        push(resolveGlobal(module as string, name as string));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        if (!Array.isArray(args)) {
          if (callable instanceof PyGlobal && !CALLABLES[callable.qualname]) unsafe(callable.qualname, 'REDUCE');
          bad('REDUCE arguments are not a tuple');
        }
        push(call(callable, args as unknown[], 'REDUCE'));
        break;
      }
      case 0x69: {
        // INST (protocol 0): module\nname\n, args after MARK
        const g = resolveGlobal(line(), line());
        push(call(g, popMark(), 'INST'));
        break;
      }
      case 0x6f: {
        // OBJ (protocol 1): MARK cls args...
        const items = popMark();
        if (items.length === 0) bad('OBJ without a class');
        push(call(items[0], items.slice(1), 'OBJ'));
        break;
      }
      case 0x81: {
        // NEWOBJ
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args)) bad('NEWOBJ arguments are not a tuple');
        push(created(reconstruct(cls, args as unknown[], bad)));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!Array.isArray(args) || !(kwargs instanceof Map)) bad('NEWOBJ_EX with malformed arguments');
        push(created(reconstruct(cls, args as unknown[], bad, kwargs as Map<unknown, unknown>)));
        break;
      }
      case 0x62: {
        const state = pop();
        build(top(), state);
        break;
      } // BUILD
      case 0x51: {
        // BINPERSID
        const pid = pop();
        if (!opts.persistentLoad) bad('persistent id without a persistent loader');
        push(opts.persistentLoad!(pid));
        break;
      }
      case 0x50: {
        // PERSID (text)
        const pid = line();
        if (!opts.persistentLoad) bad('persistent id without a persistent loader');
        push(opts.persistentLoad!(pid));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84:
        bad('extension registry codes (EXT1/2/4) are not supported');
        break;
      default:
        bad(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}

function rawUnicodeEscape(s: string, bad: (why: string) => never): string {
  return s.replace(/\\u([0-9a-fA-F]{4})|\\U([0-9a-fA-F]{8})/g, (_, a: string | undefined, b: string | undefined) => {
    const cp = parseInt((a ?? b)!, 16);
    if (cp > 0x10ffff) bad('bad \\U escape');
    return String.fromCodePoint(cp);
  });
}

/** A Python 2 `repr()` string literal, as written by the STRING opcode. */
function pyStringLiteral(s: string, bad: (why: string) => never): string {
  const q = s[0];
  if (s.length < 2 || (q !== "'" && q !== '"') || s[s.length - 1] !== q) bad('STRING argument is not quoted');
  const body = s.slice(1, -1);
  const simple: Record<string, string> = {
    n: '\n',
    t: '\t',
    r: '\r',
    '\\': '\\',
    "'": "'",
    '"': '"',
    a: '\x07',
    b: '\b',
    f: '\f',
    v: '\v',
  };
  return body.replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e: string) => {
    if (e[0] === 'x') return String.fromCharCode(parseInt(e.slice(1), 16));
    if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8) & 0xff);
    return simple[e] ?? `\\${e}`;
  });
}
