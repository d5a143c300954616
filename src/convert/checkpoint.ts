import { fail } from '../errors.js';
import { decodeFloats } from '../weights/floats.js';
import {
  PickledObject,
  PyGlobal,
  TORCH_DTYPE_SIZE,
  TorchTensor,
  torchDtypeOf,
  unpickle,
  type TorchDtype,
} from './pickle.js';
import type { RandomAccessSource } from './source.js';
import { ZipArchive } from './zip.js';

/** A storage named by a persistent id: read from `entry` only when a tensor needs it. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly entry: string,
    readonly dtype: TorchDtype,
    /** Elements (bytes for an untyped storage). */
    readonly numel: number,
  ) {}
}

const FLOAT_KINDS = { float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64' } as const;

/** Largest data.pkl we accept; real ones (with optimizer state) are a few MB. */
const MAX_PICKLE_BYTES = 1 << 30;

/**
 * A torch zip checkpoint (`torch.save`, as Lightning writes it): `<prefix>/data.pkl`,
 * `<prefix>/data/<key>` storages, `<prefix>/version`, optional `<prefix>/byteorder`.
 * Only the pickle is read on open; storages are read per tensor.
 */
export class Checkpoint {
  private constructor(
    readonly zip: ZipArchive,
    readonly prefix: string,
    readonly bigEndian: boolean,
    /** The unpickled top-level object (a Map for Lightning checkpoints). */
    readonly root: unknown,
  ) {}

  get name(): string {
    return this.zip.source.name;
  }

  static async open(source: RandomAccessSource): Promise<Checkpoint> {
    const bad = (what: string): never => fail('checkpoint', `${source.name}: ${what}`);
    const zip = await ZipArchive.open(source);
    const pkl = zip.entries.map((e) => e.name).filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pkl.length !== 1) {
      bad(
        pkl.length === 0
          ? 'no <prefix>/data.pkl entry; not a torch.save checkpoint'
          : `several data.pkl entries (${pkl.join(', ')})`,
      );
    }
    const prefix = pkl[0].slice(0, -'/data.pkl'.length);
    let bigEndian = false;
    if (zip.get(`${prefix}/byteorder`)) {
      const order = new TextDecoder().decode(await zip.read(`${prefix}/byteorder`)).trim();
      if (order !== 'little' && order !== 'big') bad(`unknown byteorder ${JSON.stringify(order)}`);
      bigEndian = order === 'big';
    }
    const pklEntry = zip.get(pkl[0])!;
    if (pklEntry.size > MAX_PICKLE_BYTES) bad(`data.pkl is ${pklEntry.size} bytes, implausibly large`);
    const storages = new Map<string, StorageRef>();
    const persistentLoad = (pid: unknown): StorageRef => {
      if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage')
        bad(`unsupported persistent id ${describeValue(pid)}`);
      const [, type, key, , numel] = pid as unknown[];
      const dtype = torchDtypeOf(type) ?? bad(`unsupported storage type ${describeValue(type)}`);
      if (typeof key !== 'string' || !/^[\w.-]+$/.test(key)) bad(`bad storage key ${describeValue(key)}`);
      if (typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0)
        bad(`storage ${key as string}: bad element count ${describeValue(numel)}`);
      const k = key as string;
      const known = storages.get(k);
      if (known) {
        if (known.dtype !== dtype) bad(`storage ${k} is referenced as both ${known.dtype} and ${dtype}`);
        return known;
      }
      const entryName = `${prefix}/data/${k}`;
      const entry = zip.get(entryName) ?? bad(`storage ${k} has no entry ${entryName}`);
      const bytes = (numel as number) * TORCH_DTYPE_SIZE[dtype];
      if (entry.size !== bytes)
        bad(`storage ${k} holds ${entry.size} bytes, but ${numel as number} x ${dtype} needs ${bytes}`);
      const ref = new StorageRef(k, entryName, dtype, numel as number);
      storages.set(k, ref);
      return ref;
    };
    const root = unpickle(await zip.read(pkl[0]), { file: source.name, persistentLoad });
    return new Checkpoint(zip, prefix, bigEndian, root);
  }

  /**
   * A floating-point tensor as row-major float32 (from float32/float16/bfloat16/float64
   * storage; non-contiguous views are gathered). `what` names it in errors.
   */
  async readFloat32(t: TorchTensor, what: string): Promise<Float32Array> {
    for await (const values of this.float32Chunks(t, what)) return values;
    return new Float32Array(0);
  }

  /**
   * The same values in pieces of at most `chunkElements` (Infinity: one piece), read from the
   * file piece by piece when the view is contiguous (the parameters of a checkpoint are), so a
   * tensor of any size costs one piece of memory. A strided view is read and gathered whole.
   */
  async *float32Chunks(t: TorchTensor, what: string, chunkElements = Infinity): AsyncGenerator<Float32Array> {
    const bad = (why: string): never => fail('checkpoint', `${this.name}: tensor ${what}: ${why}`);
    const storage = t.storage instanceof StorageRef ? t.storage : bad('its storage is not a checkpoint storage');
    const { dtype } = storage;
    const kind = FLOAT_KINDS[dtype as keyof typeof FLOAT_KINDS] ?? bad(`dtype ${dtype} is not floating point`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n === 0) return;
    let last = t.storageOffset;
    for (let i = 0; i < t.shape.length; i++) last += (t.shape[i] - 1) * t.stride[i];
    if (last >= storage.numel)
      bad(
        `view (offset ${t.storageOffset}, shape [${t.shape}], stride [${t.stride}]) exceeds its storage of ${storage.numel} elements`,
      );
    const size = TORCH_DTYPE_SIZE[dtype];
    const span = last - t.storageOffset + 1;
    if (n > span)
      bad(
        `view (shape [${t.shape}], stride [${t.stride}]) repeats storage elements; broadcast views are not supported`,
      );
    const contiguous = span === n && isContiguous(t.shape, t.stride);
    const pieces = this.zip.chunks(
      storage.entry,
      t.storageOffset * size,
      (last + 1) * size,
      contiguous ? chunkElements * size : Infinity,
    );
    for await (const raw of pieces) {
      const values = decodeFloats(raw, kind, !this.bigEndian);
      yield contiguous ? values : gather(values, t.shape, t.stride, n);
    }
  }
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** Row-major copy of a strided view whose first element is `src[0]`. */
function gather(src: Float32Array, shape: readonly number[], stride: readonly number[], n: number): Float32Array {
  const out = new Float32Array(n);
  const rank = shape.length;
  const index = new Array<number>(rank).fill(0);
  let at = 0;
  for (let i = 0; i < n; i++) {
    out[i] = src[at];
    for (let d = rank - 1; d >= 0; d--) {
      index[d]++;
      at += stride[d];
      if (index[d] < shape[d]) break;
      at -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}

/** A short description of a pickled value for error messages (nested tuples to `depth` levels: pickles can be cyclic). */
export function describeValue(v: unknown, depth = 2): string {
  if (v instanceof PyGlobal || v instanceof PickledObject) return v.qualname;
  if (v instanceof Map) return `dict(${v.size})`;
  if (Array.isArray(v))
    return depth > 0
      ? `(${v
          .slice(0, 5)
          .map((x) => describeValue(x, depth - 1))
          .join(', ')}${v.length > 5 ? ', ...' : ''})`
      : '(...)';
  if (v instanceof TorchTensor) return `tensor[${v.shape.join(', ')}]`;
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}...` : v);
  return String(v);
}

/** `obj[key]` for a pickled dict, a dict subclass (AttributeDict) or an object's state dict. */
export function lookup(obj: unknown, key: string): unknown {
  if (obj instanceof Map) return obj.get(key);
  if (obj instanceof PickledObject) {
    if (obj.dictItems?.has(key)) return obj.dictItems.get(key);
    if (obj.state instanceof Map) return obj.state.get(key);
  }
  return undefined;
}

const MAX_PLAIN_DEPTH = 64;
/** Shared references (memo) can make a small pickle expand exponentially; stop well before. */
const MAX_PLAIN_VALUES = 1_000_000;

/**
 * Plain JSON from pickled data: OmegaConf containers (`_content`) and value nodes (`_val`)
 * become their content, dicts become objects, tensors and other classes a short marker.
 */
export function toPlain(v: unknown): unknown {
  let budget = MAX_PLAIN_VALUES;
  const path = new Set<unknown>();
  const walk = (x: unknown, depth: number): unknown => {
    if (--budget < 0)
      fail(
        'checkpoint',
        `pickled data expands to more than ${MAX_PLAIN_VALUES} values; refusing to convert it to JSON`,
      );
    if (x === null || x === undefined) return null;
    if (typeof x === 'number') return Number.isFinite(x) ? x : String(x);
    if (typeof x === 'bigint') return Number.isSafeInteger(Number(x)) ? Number(x) : x.toString();
    if (typeof x === 'string' || typeof x === 'boolean') return x;
    if (x instanceof Uint8Array) return `<${x.length} bytes>`;
    if (x instanceof TorchTensor)
      return `<tensor ${x.storage instanceof StorageRef ? x.storage.dtype : '?'} [${x.shape.join(', ')}]>`;
    if (x instanceof PyGlobal) return x.qualname;
    if (depth > MAX_PLAIN_DEPTH) return '<too deep>';
    if (path.has(x)) return '<cycle>';
    path.add(x);
    try {
      if (Array.isArray(x)) return x.map((y) => walk(y, depth + 1));
      if (x instanceof Set) return [...x].map((y) => walk(y, depth + 1));
      if (x instanceof Map) {
        const out: Record<string, unknown> = {};
        for (const [k, y] of x) out[String(walk(k, depth + 1))] = walk(y, depth + 1);
        return out;
      }
      if (x instanceof PickledObject) {
        // OmegaConf containers keep their items in `_content`, value nodes in `_val`.
        for (const key of ['_content', '_val']) {
          const content = lookup(x, key);
          if (content !== undefined) return walk(content, depth + 1);
        }
        if (x.dictItems) return walk(x.dictItems, depth + 1);
        if (x.listItems) return walk(x.listItems, depth + 1);
        return `<${x.qualname}>`;
      }
      return String(x);
    } finally {
      path.delete(x);
    }
  };
  return walk(v, 0);
}
