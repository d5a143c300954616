/**
 * Fuzzing of every file the engine reads from untrusted sources: Lightning checkpoints
 * (zip + pickle), safetensors shards, a model directory's config.json and
 * weights-manifest.json. Inputs are the committed fixtures (tests/fixtures/<name>/model.ckpt)
 * and the files converting them produces; each case mutates one of them (bit flips,
 * interesting bytes and words, insertions, deletions, chunk duplication, truncation, or
 * JSON-aware edits) and runs the real reader on it. A case must end in success or a
 * PgmError, within a time bound (2 s of CPU time; 10 s of wall time is a hang), without
 * allocating far beyond its input.
 *
 *   npx tsx scripts/fuzz.ts --cases 100000 --seed 7 [--kinds ckpt,safetensors,config,manifest] [--time 3600]
 *   npx tsx scripts/fuzz.ts --seed 7 --case 1234        # replay one case
 *
 * Exit status 1 when a case crashed (threw something other than a PgmError), hung, was too
 * slow, or let a damaged shard through; the report names the case so it can be replayed. tests/robustness/
 * fuzz.test.ts runs a bounded share of the same cases in CI.
 */
import { existsSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Checkpoint } from '../src/convert/checkpoint.js';
import { convertCheckpoint, type DirSink } from '../src/convert/convert.js';
import { bytesSource } from '../src/convert/source.js';
import { ZipArchive } from '../src/convert/zip.js';
import { PgmError } from '../src/errors.js';
import type { ModelDirConfig } from '../src/weights/config.js';
import { loadModel, loadModelFromManifest, type ModelFiles } from '../src/weights/load.js';
import { readWeights } from '../src/weights/host-tensor.js';
import { memorySink, parseSafetensors, sha256Hex } from '../src/weights/safetensors.js';
import { seededUniform } from '../src/reference/random.js';
import { makeZip, type ZipInput } from '../tests/convert/helpers.js';

export type FuzzKind = 'ckpt' | 'safetensors' | 'config' | 'manifest';
export const FUZZ_KINDS: readonly FuzzKind[] = ['ckpt', 'safetensors', 'config', 'manifest'];
type Rng = () => number;

const FIXTURES = fileURLToPath(new URL('../tests/fixtures/', import.meta.url));
const below = (rng: Rng, n: number): number => Math.floor(rng() * n);
const pick = <T>(rng: Rng, items: readonly T[]): T => items[below(rng, items.length)];
const utf8 = new TextEncoder();

// ---------------------------------------------------------------- byte mutations

const INTERESTING_BYTES = [0x00, 0x01, 0x02, 0x08, 0x10, 0x20, 0x40, 0x7f, 0x80, 0x81, 0xfe, 0xff];
/** Little-endian words that make lengths, offsets and counts extreme; NaN and infinities. */
const INTERESTING_WORDS = [
  [0xff, 0xff],
  [0x00, 0x80],
  [0xff, 0x7f],
  [0x00, 0x00],
  [0xff, 0xff, 0xff, 0xff],
  [0x00, 0x00, 0x00, 0x80],
  [0xff, 0xff, 0xff, 0x7f],
  [0x00, 0x00, 0x00, 0x00],
  [0x00, 0x00, 0x01, 0x00],
  [0x00, 0x00, 0xc0, 0x7f],
  [0x00, 0x00, 0x80, 0x7f],
  [0x00, 0x00, 0x80, 0xff],
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80],
  [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00],
];
/** Bytes that change the structure of JSON text, and a byte that breaks UTF-8. */
const INTERESTING_TEXT = [...'"{}[],:-0919e.\\ n'].map((c) => c.charCodeAt(0)).concat([0x0a, 0x00, 0xc3, 0xff]);

/** Where mutations land: inside one of `regions` (start, end) with probability `focus`, anywhere otherwise. */
interface Focus {
  regions: [number, number][];
  focus: number;
}

function position(rng: Rng, length: number, where?: Focus): number {
  if (length === 0) return 0;
  if (where && where.regions.length && rng() < where.focus) {
    const [a, b] = pick(rng, where.regions);
    const p = a + below(rng, Math.max(1, b - a));
    return Math.min(p, length - 1);
  }
  return below(rng, length);
}

const splice = (b: Uint8Array, at: number, remove: number, insert: Uint8Array = new Uint8Array(0)): Uint8Array => {
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at));
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
};

/** 1-4 random edits of `input` (a copy); returns the bytes and a description of each edit. */
export function mutateBytes(
  input: Uint8Array,
  rng: Rng,
  where?: Focus,
  text = false,
): { bytes: Uint8Array; how: string[] } {
  let b: Uint8Array = input.slice();
  const how: string[] = [];
  const edits = 1 + below(rng, 4);
  for (let e = 0; e < edits; e++) {
    const p = position(rng, b.length, where);
    const op = below(rng, 8);
    if (b.length === 0 && op !== 5) continue;
    switch (op) {
      case 0: {
        // bit flip
        const bit = below(rng, 8);
        b[p] ^= 1 << bit;
        how.push(`flip@${p}.${bit}`);
        break;
      }
      case 1: {
        // interesting byte (text targets: a structural character)
        b[p] = text && rng() < 0.7 ? pick(rng, INTERESTING_TEXT) : pick(rng, INTERESTING_BYTES);
        how.push(`byte@${p}=${b[p]}`);
        break;
      }
      case 2: {
        // random byte
        b[p] = below(rng, 256);
        how.push(`rand@${p}=${b[p]}`);
        break;
      }
      case 3: {
        // interesting little-endian word
        const w = pick(rng, INTERESTING_WORDS);
        for (let i = 0; i < w.length && p + i < b.length; i++) b[p + i] = w[i];
        how.push(`word@${p}=${w.length}B`);
        break;
      }
      case 4: {
        // delete a range
        const n = Math.min(1 + below(rng, rng() < 0.8 ? 16 : 512), b.length - p);
        b = splice(b, p, n);
        how.push(`del@${p}+${n}`);
        break;
      }
      case 5: {
        // insert random or interesting bytes
        const n = 1 + below(rng, 16);
        const ins = Uint8Array.from({ length: n }, () =>
          rng() < 0.5 ? below(rng, 256) : pick(rng, text ? INTERESTING_TEXT : INTERESTING_BYTES),
        );
        b = splice(b, p, 0, ins);
        how.push(`ins@${p}+${n}`);
        break;
      }
      case 6: {
        // duplicate a chunk: copy [from, from + n) and insert it at p
        const from = position(rng, b.length, where);
        const n = Math.min(1 + below(rng, 256), b.length - from);
        b = splice(b, p, 0, b.slice(from, from + n));
        how.push(`dup@${from}+${n}->${p}`);
        break;
      }
      default: {
        // overwrite with a chunk from elsewhere
        const from = position(rng, b.length, where);
        const n = Math.min(1 + below(rng, 64), b.length - from, b.length - p);
        b.copyWithin(p, from, from + n);
        how.push(`copy@${from}+${n}->${p}`);
      }
    }
  }
  return { bytes: b, how };
}

/** A prefix of `input`: anywhere, or within the last `tail` bytes (zip end records, the end of a header). */
export function truncate(input: Uint8Array, rng: Rng, tail: number): { bytes: Uint8Array; how: string[] } {
  const n =
    rng() < 0.5 ? below(rng, input.length) : Math.max(0, input.length - 1 - below(rng, Math.min(tail, input.length)));
  return { bytes: input.subarray(0, n), how: [`truncate@${n}`] };
}

// ---------------------------------------------------------------- JSON mutations

const DEEP = '['.repeat(100_000) + ']'.repeat(100_000);
const DEEP_MARK = '<deeply nested array>';
/** Values that break assumptions of JSON readers: extremes, wrong types, hostile paths and URLs, deep nesting. */
const INTERESTING_JSON = [
  '0',
  '-1',
  '1',
  '2',
  '1.5',
  '-0',
  '255',
  '256',
  '65535',
  '2147483648',
  '4294967296',
  '9007199254740993',
  '1e308',
  '-1e308',
  '1e-320',
  'null',
  'true',
  'false',
  '""',
  '"x"',
  '[]',
  '{}',
  '[1]',
  '[0,0]',
  '[-1,1]',
  '{"a":1}',
  `"${'a'.repeat(5000)}"`,
  '"F64"',
  '"I8"',
  '"f16"',
  '"pgm"',
  '"mdlm"',
  '"learn"',
  '"../config.json"',
  '"model.safetensors"',
  '"a/../../etc/passwd"',
  '"http://["',
  '"//evil.test/x/"',
  '"file:///etc/"',
  '"\\u0000"',
  '"\\ud800"',
  `"${'f'.repeat(64)}"`,
  `"${'0'.repeat(64)}"`,
  DEEP,
];

type JsonPath = (string | number)[];

function paths(v: unknown, at: JsonPath = [], out: JsonPath[] = []): JsonPath[] {
  out.push(at);
  if (at.length > 32) return out;
  if (Array.isArray(v)) v.forEach((x, i) => paths(x, [...at, i], out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) paths(x, [...at, k], out);
  return out;
}

const getAt = (root: unknown, p: JsonPath): unknown =>
  p.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], root);

/** 1-3 structural edits of a JSON document (replace a value, delete a key, duplicate an item, tweak a number). */
export function mutateJson(text: string, rng: Rng): { bytes: Uint8Array; how: string[] } {
  let root: unknown = JSON.parse(text);
  const how: string[] = [];
  const edits = 1 + below(rng, 3);
  for (let e = 0; e < edits; e++) {
    const all = paths(root);
    const p = pick(rng, all);
    const op = below(rng, 4);
    const parent = p.length ? (getAt(root, p.slice(0, -1)) as Record<string | number, unknown>) : undefined;
    const key = p[p.length - 1];
    const current = getAt(root, p);
    const name = p.join('.') || '<root>';
    if (op === 0 || !parent) {
      const raw = pick(rng, INTERESTING_JSON);
      // Deep nesting is spliced into the text at the end: JSON.stringify itself cannot write it.
      const value: unknown = raw === DEEP ? DEEP_MARK : JSON.parse(raw);
      if (parent) parent[key] = value;
      else root = value;
      how.push(`set ${name}=${raw.length > 24 ? `${raw.slice(0, 12)}...(${raw.length})` : raw}`);
    } else if (op === 1) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key];
      how.push(`delete ${name}`);
    } else if (op === 2 && Array.isArray(parent)) {
      parent.splice(key as number, 0, structuredClone(current));
      how.push(`duplicate ${name}`);
    } else if (typeof current === 'number') {
      const v = pick(rng, [current + 1, current - 1, current * 2, -current, current / 2, current * 1e6]);
      parent[key] = v;
      how.push(`number ${name}=${v}`);
    } else if (typeof current === 'string') {
      const v = pick(rng, [current.toUpperCase(), `${current}x`, current.slice(1), '', current.repeat(3)]);
      parent[key] = v;
      how.push(`string ${name}=${JSON.stringify(v).slice(0, 24)}`);
    } else {
      parent[key] = pick(rng, [[current], { v: current }, null]);
      how.push(`wrap ${name}`);
    }
  }
  return { bytes: utf8.encode(JSON.stringify(root, null, 1).replaceAll(JSON.stringify(DEEP_MARK), DEEP)), how };
}

// ---------------------------------------------------------------- inputs

/** A conversion that keeps its files in memory. */
export function memoryDir(): DirSink & { files: Map<string, Uint8Array> } {
  const files = new Map<string, Uint8Array>();
  return {
    files,
    async create(file, size) {
      const sink = memorySink(size);
      return { ...sink, close: () => sink.close().finally(() => files.set(file, sink.bytes())) };
    },
    async writeText(file, text) {
      files.set(file, utf8.encode(text));
    },
  };
}

/** Model files served from memory; a file that is not there is an `io` error, as on disk. */
export function memoryFiles(location: string, files: ReadonlyMap<string, Uint8Array>): ModelFiles {
  return {
    location,
    async read(file) {
      const bytes = files.get(file);
      if (!bytes) throw new PgmError('io', `${location}/${file}: cannot read (ENOENT)`);
      return bytes;
    },
  };
}

/** One generated input and how to feed it to the reader. */
export interface FuzzCase {
  kind: FuzzKind;
  file: string;
  how: string[];
  /** Bytes the case hands to the reader (the mutated file plus the intact files served next to it). */
  inputBytes: number;
  run(): Promise<void>;
}

/** A file to fuzz: `make` turns a case's random stream into one case. */
export interface FuzzTarget {
  kind: FuzzKind;
  file: string;
  size: number;
  make(rng: Rng): FuzzCase;
}

/** A case broke a rule: it threw something other than a PgmError, or the reader accepted what it must refuse. */
export class Violation extends Error {}

interface FixtureModel {
  name: string;
  ckpt: Uint8Array;
  dirConfig: ModelDirConfig;
  files: Map<string, Uint8Array>;
}

async function convertFixture(name: string, ckpt: Uint8Array): Promise<FixtureModel> {
  const out = memoryDir();
  const { dirConfig } = await convertCheckpoint(await Checkpoint.open(bytesSource(ckpt, `${name}/model.ckpt`)), out);
  return { name, ckpt, dirConfig, files: out.files };
}

async function ckptTarget(m: FixtureModel): Promise<FuzzTarget> {
  const file = `${m.name}/model.ckpt`;
  const zip = await ZipArchive.open(bytesSource(m.ckpt, file));
  const entries: ZipInput[] = [];
  for (const e of zip.entries) entries.push({ name: e.name, data: await zip.read(e.name) });
  const pickle = entries.findIndex((e) => e.name.endsWith('/data.pkl'));
  // Structure: every local header, the pickle's bytes and the central directory with the end records.
  const dv = new DataView(m.ckpt.buffer, m.ckpt.byteOffset, m.ckpt.byteLength);
  const regions: [number, number][] = [];
  let dataEnd = 0;
  for (const e of zip.entries) {
    const dataStart =
      e.localHeaderOffset +
      30 +
      dv.getUint16(e.localHeaderOffset + 26, true) +
      dv.getUint16(e.localHeaderOffset + 28, true);
    regions.push([e.localHeaderOffset, dataStart]);
    if (e.name.endsWith('/data.pkl')) regions.push([dataStart, dataStart + e.compressedSize]);
    dataEnd = Math.max(dataEnd, dataStart + e.compressedSize);
  }
  regions.push([dataEnd, m.ckpt.length]);
  const structure: Focus = { regions, focus: 0.85 };
  return {
    kind: 'ckpt',
    file,
    size: m.ckpt.length,
    make(rng) {
      const mode = rng();
      let bytes: Uint8Array;
      let how: string[];
      if (mode < 0.35) ({ bytes, how } = mutateBytes(m.ckpt, rng, structure));
      else if (mode < 0.45) ({ bytes, how } = truncate(m.ckpt, rng, m.ckpt.length - dataEnd + 64));
      else {
        // Mutate one entry's content behind a valid CRC (the zip written again, stored): the pickle most often, else any entry.
        const i = rng() < 0.75 ? pickle : below(rng, entries.length);
        const edited = mutateBytes(entries[i].data, rng);
        bytes = makeZip(entries.map((e, j) => (j === i ? { name: e.name, data: edited.bytes } : e)));
        how = [`entry ${entries[i].name}: ${edited.how.join(' ')}`];
      }
      const ema = rng() < 0.8;
      const dtype = rng() < 0.3 ? 'f16' : 'f32';
      how.push(`convert ${ema ? 'ema' : 'raw'} ${dtype}`);
      return {
        kind: 'ckpt',
        file,
        how,
        inputBytes: bytes.length,
        async run() {
          await convertCheckpoint(await Checkpoint.open(bytesSource(bytes, file)), memoryDir(), { ema, dtype });
        },
      };
    },
  };
}

function safetensorsTarget(
  m: FixtureModel,
  dtype: 'f32' | 'f16',
  shard: Uint8Array,
  dirConfig: ModelDirConfig,
  configText: Uint8Array,
): FuzzTarget {
  const file = `${m.name}/model.safetensors (${dtype})`;
  const headerEnd = 8 + Number(new DataView(shard.buffer, shard.byteOffset).getBigUint64(0, true));
  const header: Focus = { regions: [[0, headerEnd]], focus: 0.8 };
  return {
    kind: 'safetensors',
    file,
    size: shard.length,
    make(rng) {
      const { bytes, how } =
        rng() < 0.85 ? mutateBytes(shard, rng, header, true) : truncate(shard, rng, headerEnd + 16);
      const changed = bytes.length !== shard.length || bytes.some((v, i) => v !== shard[i]);
      return {
        kind: 'safetensors',
        file,
        how,
        inputBytes: bytes.length + configText.length,
        async run() {
          // The download path: config.json still lists the intact shard's size and sha256.
          let caught: unknown;
          try {
            await readWeights(
              (
                await loadModel(
                  memoryFiles(
                    m.name,
                    new Map([
                      ['config.json', configText],
                      ['model.safetensors', bytes],
                    ]),
                  ),
                )
              ).weights,
            );
          } catch (e) {
            caught = e;
          }
          if (
            changed &&
            !(caught instanceof PgmError && caught.code === 'integrity' && caught.message.includes('model.safetensors'))
          ) {
            throw new Violation(
              `a damaged shard was not reported as an integrity error naming it (got ${caught instanceof Error ? caught.message : 'success'})`,
            );
          }
          if (caught && !(caught instanceof PgmError)) throw caught;
          // The parser behind the hash: the same file as if its config.json listed it.
          for (const t of parseSafetensors(bytes, 'model.safetensors').tensors.values()) t.toFloat32();
          const listed = {
            ...dirConfig,
            shards: [{ file: 'model.safetensors', size: bytes.length, sha256: await sha256Hex(bytes) }],
          };
          await readWeights(
            (
              await loadModel(
                memoryFiles(
                  m.name,
                  new Map([
                    ['config.json', utf8.encode(JSON.stringify(listed))],
                    ['model.safetensors', bytes],
                  ]),
                ),
              )
            ).weights,
          );
        },
      };
    },
  };
}

function configTarget(m: FixtureModel): FuzzTarget {
  const file = `${m.name}/config.json`;
  const original = m.files.get('config.json')!;
  const text = new TextDecoder().decode(original);
  const shardBytes = [...m.files].filter(([f]) => f.endsWith('.safetensors')).reduce((a, [, b]) => a + b.length, 0);
  return {
    kind: 'config',
    file,
    size: original.length,
    make(rng) {
      const { bytes, how } = rng() < 0.5 ? mutateBytes(original, rng, undefined, true) : mutateJson(text, rng);
      return {
        kind: 'config',
        file,
        how,
        inputBytes: bytes.length + shardBytes,
        async run() {
          await readWeights(
            (await loadModel(memoryFiles(m.name, new Map([...m.files, ['config.json', bytes]])))).weights,
          );
        },
      };
    },
  };
}

const MANIFEST_URL = 'http://models.test/weights-manifest.json';

function manifestTarget(models: FixtureModel[]): FuzzTarget {
  const manifest = {
    version: 1,
    default: models[0].name,
    models: models.map((m) => ({
      id: m.name,
      arch: m.dirConfig.model.arch,
      path: m.name,
      description: `fixture ${m.name}`,
      params: 1000,
      shards: m.dirConfig.shards,
      license: 'MIT',
    })),
  };
  const text = JSON.stringify(manifest, null, 1);
  const original = utf8.encode(text);
  const served = new Map<string, Uint8Array>(
    models.flatMap((m) => [...m.files].map(([f, b]) => [`/${m.name}/${f}`, b] as const)),
  );
  const modelBytes = Math.max(...models.map((m) => [...m.files.values()].reduce((a, b) => a + b.length, 0)));
  return {
    kind: 'manifest',
    file: 'weights-manifest.json',
    size: original.length,
    make(rng) {
      const { bytes, how } = rng() < 0.4 ? mutateBytes(original, rng, undefined, true) : mutateJson(text, rng);
      const id = pick(rng, [undefined, models[0].name, models[models.length - 1].name, 'missing']);
      how.push(`id ${id ?? '<default>'}`);
      const fetchFn = (async (input: string | URL | Request) => {
        const url = new URL(String(input));
        const body =
          url.href === MANIFEST_URL
            ? bytes
            : url.host === 'models.test'
              ? served.get(decodeURIComponent(url.pathname))
              : undefined;
        return body
          ? new Response(body as Uint8Array<ArrayBuffer>)
          : new Response('not found', { status: 404, statusText: 'Not Found' });
      }) as typeof fetch;
      return {
        kind: 'manifest',
        file: 'weights-manifest.json',
        how,
        inputBytes: bytes.length + modelBytes,
        async run() {
          await readWeights((await loadModelFromManifest(MANIFEST_URL, id, {}, fetchFn)).weights);
        },
      };
    },
  };
}

/** Every fuzz target, built from the fixtures that hold a model.ckpt (about a second: each is converted once). */
export async function fuzzTargets(fixtures = FIXTURES): Promise<FuzzTarget[]> {
  const names = readdirSync(fixtures, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(fixtures, d.name, 'model.ckpt')))
    .map((d) => d.name)
    .sort();
  const models: FixtureModel[] = [];
  for (const name of names)
    models.push(await convertFixture(name, new Uint8Array(readFileSync(join(fixtures, name, 'model.ckpt')))));
  const targets: FuzzTarget[] = [];
  for (const m of models) {
    targets.push(await ckptTarget(m), configTarget(m));
    const text = m.files.get('config.json')!;
    targets.push(safetensorsTarget(m, 'f32', m.files.get('model.safetensors')!, m.dirConfig, text));
  }
  // f16 shards too, for two fixtures (other dtypes and a different header).
  for (const m of models.filter((x) => x.name === 'pgm-bf16' || x.name === 'mdlm-tiny')) {
    const out = memoryDir();
    const { dirConfig } = await convertCheckpoint(await Checkpoint.open(bytesSource(m.ckpt, m.name)), out, {
      dtype: 'f16',
    });
    targets.push(
      safetensorsTarget(m, 'f16', out.files.get('model.safetensors')!, dirConfig, out.files.get('config.json')!),
    );
  }
  const small = models.filter((m) => m.name === 'pgm-bf16' || m.name === 'mdlm-tiny');
  targets.push(manifestTarget(small.length ? small : models.slice(0, 2)));
  return targets;
}

// ---------------------------------------------------------------- allocation tracking

const ALLOCATORS = [
  'ArrayBuffer',
  'Uint8Array',
  'Int8Array',
  'Uint8ClampedArray',
  'Uint16Array',
  'Int16Array',
  'Uint32Array',
  'Int32Array',
  'Float32Array',
  'Float64Array',
  'BigInt64Array',
  'BigUint64Array',
] as const;

/**
 * Counts the bytes JS code allocates through `new ArrayBuffer/TypedArray(...)` and
 * `TypedArray.from` (the ways a reader sizes a buffer from a number it parsed): the global
 * constructors are replaced by proxies until `restore()`. A size recorded before the
 * allocation runs, so an attempt that throws (RangeError) still counts. Copies made by
 * `slice`/`map` and allocations inside native code (streams, TextDecoder) are not seen;
 * `process.memoryUsage().arrayBuffers` growth is the cross-check.
 */
export function trackAllocations(): { largest: number; total: number; reset(): void; restore(): void } {
  const g = globalThis as unknown as Record<string, unknown>;
  const originals = ALLOCATORS.map((name) => [name, g[name]] as const);
  const tracker = {
    largest: 0,
    total: 0,
    reset() {
      tracker.largest = 0;
      tracker.total = 0;
    },
    restore() {
      for (const [name, ctor] of originals) g[name] = ctor;
    },
  };
  const note = (bytes: number): void => {
    tracker.largest = Math.max(tracker.largest, bytes);
    tracker.total += bytes;
  };
  for (const [name, ctor] of originals) {
    const perElement = name === 'ArrayBuffer' ? 1 : (ctor as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    g[name] = new Proxy(ctor as unknown as new (...args: unknown[]) => object, {
      construct(target, args, newTarget) {
        const first = args[0];
        if (typeof first === 'number') note(first * perElement);
        const made = Reflect.construct(target, args, newTarget) as { byteLength: number };
        if (typeof first !== 'number' && !(first instanceof ArrayBuffer || first instanceof SharedArrayBuffer))
          note(made.byteLength);
        return made;
      },
    });
  }
  return tracker;
}

// ---------------------------------------------------------------- the runner

export interface CaseRecord {
  index: number;
  kind: FuzzKind;
  file: string;
  how: string;
  error?: string;
  ms?: number;
}

export interface FuzzReport {
  seed: number;
  files: { kind: FuzzKind; file: string; size: number }[];
  cases: number;
  byKind: Record<string, { cases: number; ok: number; errors: Record<string, number> }>;
  /** Threw something other than a PgmError. */
  crashes: CaseRecord[];
  /** Did not settle within the case wall-time limit. */
  hangs: CaseRecord[];
  /** Settled, but used more CPU time than the case limit (wall time varies with the machine's load; CPU time does not). */
  slow: CaseRecord[];
  /** A damaged shard loaded, or an integrity error that did not name it. */
  violations: CaseRecord[];
  /** Wall time and CPU time (user + system, this process) of the slowest case. */
  maxCaseMs: number;
  maxCaseCpuMs: number;
  slowest?: CaseRecord;
  /** Largest single buffer allocated by a case / the bytes that case was given. */
  maxAllocationRatio: number;
  largestAllocation?: CaseRecord & { bytes: number; inputBytes: number };
  /** Largest sum of all buffers a case allocated / the bytes that case was given. */
  maxTotalAllocationRatio: number;
  /** Largest `process.memoryUsage().arrayBuffers` growth over a case / its input bytes. */
  maxArrayBufferGrowthRatio: number;
  elapsedMs: number;
}

export interface FuzzOptions {
  cases: number;
  seed: number;
  kinds?: readonly FuzzKind[];
  /** Stop early after this much wall time (the report says how many cases ran). */
  timeBudgetMs?: number;
  /** A case that has not settled after this much wall time is a hang (default 10 s). */
  caseTimeoutMs?: number;
  /** A case that uses more CPU time is too slow (default 2 s). */
  caseCpuLimitMs?: number;
  /** Run only this case index (replay). */
  only?: number;
  onProgress?: (done: number, report: FuzzReport) => void;
}

/** A case's own random stream: case `i` of seed `s` is the same whatever else runs. */
const caseRng = (seed: number, index: number): Rng =>
  seededUniform(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));

export async function fuzz(targets: readonly FuzzTarget[], options: FuzzOptions): Promise<FuzzReport> {
  const kinds = (options.kinds ?? FUZZ_KINDS).filter((k) => targets.some((t) => t.kind === k));
  const timeout = options.caseTimeoutMs ?? 10_000;
  const cpuLimit = options.caseCpuLimitMs ?? 2000;
  const start = performance.now();
  const report: FuzzReport = {
    seed: options.seed,
    files: targets.filter((t) => kinds.includes(t.kind)).map((t) => ({ kind: t.kind, file: t.file, size: t.size })),
    cases: 0,
    byKind: Object.fromEntries(kinds.map((k) => [k, { cases: 0, ok: 0, errors: {} }])),
    crashes: [],
    hangs: [],
    slow: [],
    violations: [],
    maxCaseMs: 0,
    maxCaseCpuMs: 0,
    maxAllocationRatio: 0,
    maxTotalAllocationRatio: 0,
    maxArrayBufferGrowthRatio: 0,
    elapsedMs: 0,
  };
  const tracker = trackAllocations();
  try {
    const indices = options.only !== undefined ? [options.only] : Array.from({ length: options.cases }, (_, i) => i);
    for (const index of indices) {
      if (options.timeBudgetMs !== undefined && performance.now() - start > options.timeBudgetMs) break;
      const kind = kinds[index % kinds.length];
      const rng = caseRng(options.seed, index);
      const ofKind = targets.filter((t) => t.kind === kind);
      const c = pick(rng, ofKind).make(rng);
      const record: CaseRecord = { index, kind, file: c.file, how: c.how.join(' ') };
      const buffersBefore = process.memoryUsage().arrayBuffers;
      tracker.reset();
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        c.run().then(
          () => 'ok' as const,
          (e: unknown) => e,
        ),
        new Promise<'hang'>((resolve) => (timer = setTimeout(() => resolve('hang'), timeout))),
      ]);
      clearTimeout(timer);
      const ms = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      const cpuMs = (cpu.user + cpu.system) / 1000;
      const stats = report.byKind[kind];
      stats.cases++;
      report.cases++;
      if (outcome === 'ok') stats.ok++;
      else if (outcome === 'hang') report.hangs.push({ ...record, ms });
      else if (outcome instanceof Violation) report.violations.push({ ...record, error: outcome.message });
      else if (outcome instanceof PgmError) stats.errors[outcome.code] = (stats.errors[outcome.code] ?? 0) + 1;
      else
        report.crashes.push({
          ...record,
          error: outcome instanceof Error ? (outcome.stack ?? outcome.message) : String(outcome),
        });
      if (cpuMs > cpuLimit) report.slow.push({ ...record, ms: cpuMs });
      report.maxCaseMs = Math.max(report.maxCaseMs, ms);
      if (cpuMs > report.maxCaseCpuMs) {
        report.maxCaseCpuMs = cpuMs;
        report.slowest = { ...record, ms: cpuMs };
      }
      const ratio = tracker.largest / c.inputBytes;
      if (ratio > report.maxAllocationRatio) {
        report.maxAllocationRatio = ratio;
        report.largestAllocation = { ...record, bytes: tracker.largest, inputBytes: c.inputBytes };
      }
      report.maxTotalAllocationRatio = Math.max(report.maxTotalAllocationRatio, tracker.total / c.inputBytes);
      report.maxArrayBufferGrowthRatio = Math.max(
        report.maxArrayBufferGrowthRatio,
        (process.memoryUsage().arrayBuffers - buffersBefore) / c.inputBytes,
      );
      options.onProgress?.(report.cases, report);
    }
  } finally {
    tracker.restore();
  }
  report.elapsedMs = performance.now() - start;
  return report;
}

/** A few lines for logs. */
export function formatReport(r: FuzzReport): string {
  const kinds = Object.entries(r.byKind).map(
    ([k, s]) => `  ${k}: ${s.cases} cases, ${s.ok} ok, errors ${JSON.stringify(s.errors)}`,
  );
  const lines = [
    `seed ${r.seed}: ${r.cases} cases over ${r.files.length} files in ${(r.elapsedMs / 1000).toFixed(1)} s`,
    ...kinds,
    `crashes ${r.crashes.length}, hangs ${r.hangs.length}, too slow ${r.slow.length}, violations ${r.violations.length}`,
    `max case CPU time ${r.maxCaseCpuMs.toFixed(1)} ms${r.slowest ? ` (case ${r.slowest.index}, ${r.slowest.file})` : ''}, max case wall time ${r.maxCaseMs.toFixed(1)} ms`,
    `largest allocation ${(r.largestAllocation?.bytes ?? 0).toLocaleString('en')} bytes = ${r.maxAllocationRatio.toFixed(3)} x input${r.largestAllocation ? ` (case ${r.largestAllocation.index}, ${r.largestAllocation.file}, input ${r.largestAllocation.inputBytes} bytes)` : ''}`,
    `largest total allocated by one case ${r.maxTotalAllocationRatio.toFixed(3)} x input; largest arrayBuffers growth ${r.maxArrayBufferGrowthRatio.toFixed(3)} x input`,
  ];
  for (const c of [...r.crashes, ...r.hangs, ...r.slow, ...r.violations].slice(0, 20))
    lines.push(
      `  case ${c.index} ${c.kind} ${c.file} [${c.how}]: ${(c.error ?? `${c.ms?.toFixed(0)} ms`).split('\n').slice(0, 3).join(' | ')}`,
    );
  return lines.join('\n');
}

function parseArgs(argv: string[]): FuzzOptions & { json: boolean } {
  const opts: FuzzOptions & { json: boolean } = { cases: 10_000, seed: 1, json: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = (): string => argv[++i] ?? usage(`${a} needs a value`);
    const int = (): number => {
      const v = Number(value());
      if (!Number.isSafeInteger(v) || v < 0) usage(`${a} needs a non-negative integer`);
      return v;
    };
    if (a === '--cases') opts.cases = int();
    else if (a === '--seed') opts.seed = int();
    else if (a === '--time') opts.timeBudgetMs = int() * 1000;
    else if (a === '--case-timeout') opts.caseTimeoutMs = int();
    else if (a === '--case-cpu') opts.caseCpuLimitMs = int();
    else if (a === '--case') opts.only = int();
    else if (a === '--json') opts.json = true;
    else if (a === '--kinds') {
      const kinds = value().split(',');
      for (const k of kinds)
        if (!FUZZ_KINDS.includes(k as FuzzKind)) usage(`unknown kind ${k} (use ${FUZZ_KINDS.join(', ')})`);
      opts.kinds = kinds as FuzzKind[];
    } else usage(`unknown option ${a}`);
  }
  return opts;
}

function usage(message: string): never {
  console.error(
    `fuzz: ${message}\nusage: npx tsx scripts/fuzz.ts [--cases N] [--seed S] [--kinds ${FUZZ_KINDS.join(',')}] [--time SECONDS] [--case-timeout MS] [--case-cpu MS] [--case I] [--json]`,
  );
  process.exit(2);
}

async function main(): Promise<void> {
  const opts = parseArgs(process.argv.slice(2));
  const targets = await fuzzTargets();
  let last = performance.now();
  const report = await fuzz(targets, {
    ...opts,
    onProgress(done, r) {
      if (performance.now() - last > 10_000) {
        last = performance.now();
        console.error(
          `${done} cases, ${r.crashes.length} crashes, ${r.hangs.length} hangs, ${r.slow.length} too slow, ${r.violations.length} violations, max ${r.maxCaseCpuMs.toFixed(0)} ms CPU`,
        );
      }
    },
  });
  console.log(opts.json ? JSON.stringify(report) : formatReport(report));
  process.exitCode =
    report.crashes.length || report.hangs.length || report.slow.length || report.violations.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) await main();
