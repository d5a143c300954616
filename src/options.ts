/**
 * The generation options of `generate` and `generateBatch`, resolved in one place: one table
 * (`GENERATION_OPTIONS`) gives each option's type, default, bound and documentation (the API
 * checks, the CLI's flags and usage text, the demo and the README read it), and
 * `resolveGenerationOptions` turns checked options into what the samplers run: defaults filled
 * in, bounds derived from the model, the prompt or infill encoded once.
 */
import { brief, fail } from './errors.js';
import type { ModelConfig } from './weights/config.js';
import { isLocalModel } from './convert/import.js';
import { DEFAULT_STALL_TIMEOUT } from './weights/fetch.js';
import { GPU_MODEL_DEFAULTS, WEIGHT_STORAGES } from './model/gpu-model.js';
import { REENCODE_PER_FRESH } from './model/kv-set.js';
import { isWeights } from './weights/host-tensor.js';
import type { Vocabulary } from './text/vocab.js';
import {
  ENCODER_MODES,
  MDLM_STEPS_PER_POSITION,
  type SamplingOptions,
  type SequencePlan,
} from './sampling/samplers.js';
import { ORDERS, SCHEDULES } from './sampling/schedule.js';
import type { EngineOptions, SequenceOptions, SharedOptions } from './types.js';

/**
 * Temperatures the sampling kernel computes with: it scales f32 logits by 1/T. Below 1e-6 a
 * logit beyond 3.4e32 * T overflows f32 (and 1/T itself does below 2^-126), and sampling is
 * greedy to f32 precision anyway: use `greedy`. Above 1e6 every token is equally likely to f32
 * precision (and T itself overflows f32 above 3.4e38).
 */
export const MIN_TEMPERATURE = 1e-6;
export const MAX_TEMPERATURE = 1e6;
/** As messages and usage texts write it. */
export const TEMPERATURE_RANGE = `[${MIN_TEMPERATURE.toExponential()}, ${MAX_TEMPERATURE.toExponential()}]`;
/** The placeholder is repeated at every unknown position of every step event's text. */
export const MAX_PLACEHOLDER_LENGTH = 16;
/** The adaptive encoder's threshold when none is given (README, "Incremental encoding: speed and quality"). */
export const DEFAULT_STALENESS = 0.3;

/** undefined when `value` is fine; else "must be ..." (the message adds the option and the value) or a whole message. */
type Check = (value: unknown) => string | undefined;

/** A plain object (or a class instance), not an array, Map, Date...: those have no options in them. */
const isObject = (v: unknown): v is Record<string, unknown> => Object.prototype.toString.call(v) === '[object Object]';
const integer: Check = (v) => (Number.isInteger(v) ? undefined : 'must be an integer');
const number: Check = (v) => (typeof v === 'number' && !Number.isNaN(v) ? undefined : 'must be a number');
const string: Check = (v) => (typeof v === 'string' ? undefined : 'must be a string');
const oneOf =
  (what: string, values: readonly string[]): Check =>
  (v) =>
    typeof v === 'string' && values.includes(v)
      ? undefined
      : `unknown ${what} ${brief(v)}; use one of ${values.join(', ')}`;

const isSignal: Check = (v) => {
  const signal = v as Partial<AbortSignal> | null;
  return typeof signal === 'object' &&
    signal !== null &&
    typeof signal.aborted === 'boolean' &&
    typeof signal.addEventListener === 'function'
    ? undefined
    : 'must be an AbortSignal';
};

/** One generation option, as the API checks it, the CLI parses it and the docs describe it. */
export interface GenerationOption {
  name: string;
  /** Per sequence (`generateBatch`'s `sequences[i]`) or shared by the batch. */
  scope: 'sequence' | 'shared';
  /** The `pgm generate` flag and how its text is read; none: API only. */
  cli?: { flag: string; parse: 'text' | 'integer' | 'number' | 'switch' };
  /** What it takes, its bound included. */
  takes: string;
  default: string;
  doc: string;
  check: Check;
}

const infill: Check = (v) => {
  if (typeof v === 'string') return undefined;
  if (!Array.isArray(v)) return 'must be a template string or an array of { position, text } segments';
  for (const [i, seg] of v.entries()) {
    if (!isObject(seg)) return `infill segment ${i} must be an object { position, text }, got ${typed(seg)}`;
    const extra = Object.keys(seg).find((k) => k !== 'position' && k !== 'text');
    if (extra !== undefined)
      return `infill segment ${i} has an unknown field ${brief(extra)} (a segment is { position, text })`;
    if (!Number.isInteger(seg.position) || (seg.position as number) < 1)
      return `infill segment ${i}: position must be an integer >= 1 (0 holds BOS), got ${typed(seg.position)}`;
    if (typeof seg.text !== 'string') return `infill segment ${i}: text must be a string, got ${typed(seg.text)}`;
  }
  return undefined;
};

export const GENERATION_OPTIONS: readonly GenerationOption[] = [
  {
    name: 'prompt',
    scope: 'sequence',
    cli: { flag: 'prompt', parse: 'text' },
    takes: 'text',
    default: 'none',
    doc: 'a prefix: its tokens are clean at positions 1.. after BOS',
    check: string,
  },
  {
    name: 'infill',
    scope: 'sequence',
    cli: { flag: 'infill', parse: 'text' },
    takes: 'a template with {{n}} holes (n >= 1 tokens each), or [{ position, text }] segments',
    default: 'none',
    doc: 'known text anywhere, e.g. "The {{3}} sat on the mat.{{5}}"; a template that ends with a hole ends there (it sets the length: "{{5}}{{5}}" is 10 tokens), one that ends with text is continued up to the length',
    check: infill,
  },
  {
    name: 'seed',
    scope: 'sequence',
    cli: { flag: 'seed', parse: 'integer' },
    takes: 'an integer in [0, 2^32)',
    default: 'random',
    doc: 'seeds the reveal order, the schedule and every draw (the CLI: sequence b gets seed + b)',
    check: (v) =>
      Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32
        ? undefined
        : 'must be an integer in [0, 2^32)',
  },
  {
    name: 'length',
    scope: 'shared',
    cli: { flag: 'length', parse: 'integer' },
    takes: 'an integer in [2, L], L the model length',
    default: 'L, or where an infill template that ends with a hole ends',
    doc: 'generate positions < length',
    check: integer,
  },
  {
    name: 'steps',
    scope: 'shared',
    cli: { flag: 'steps', parse: 'integer' },
    takes: `an integer in [1, positions to generate] (MDLM: up to ${MDLM_STEPS_PER_POSITION} x that)`,
    default: 'min(64, positions to generate)',
    doc: 'sampling steps',
    check: integer,
  },
  {
    name: 'order',
    scope: 'shared',
    cli: { flag: 'order', parse: 'text' },
    takes: ORDERS.join(' | '),
    default: 'random',
    doc: 'random (the paper), left-to-right (blocks of length/steps in position order: semi-autoregressive), confident (each step predicts every remaining position and reveals the most probable: costlier; PGM only)',
    check: oneOf('order', ORDERS),
  },
  {
    name: 'schedule',
    scope: 'shared',
    cli: { flag: 'schedule', parse: 'text' },
    takes: SCHEDULES.join(' | '),
    default: 'uniform',
    doc: 'uniform (the paper\'s "efficient-uniform") or non-uniform (binomial counts under the log-linear schedule, leftovers in one last step)',
    check: oneOf('schedule', SCHEDULES),
  },
  {
    name: 'temperature',
    scope: 'shared',
    cli: { flag: 'temperature', parse: 'number' },
    takes: `a number in ${TEMPERATURE_RANGE}`,
    default: '1',
    doc: 'divides the logits; greedy is the T -> 0 limit',
    check: number,
  },
  {
    name: 'topP',
    scope: 'shared',
    cli: { flag: 'top-p', parse: 'number' },
    takes: 'a number in (0, 1]',
    default: "the checkpoint's sampling.p_nucleus",
    doc: 'nucleus mass',
    check: number,
  },
  {
    name: 'encoder',
    scope: 'shared',
    cli: { flag: 'encoder', parse: 'text' },
    takes: ENCODER_MODES.join(' | '),
    default: 'exact',
    doc: "PGM: exact re-encodes every clean token each step; incremental encodes each token once, when it joins, and keeps its keys and values (a KV set): each step costs only what is new, but earlier tokens never see later ones (an approximation, measured in the README); delayed is incremental that encodes each token a second time in the next step, so it also sees the tokens that joined right after it (dKV-Cache's delayed caching; about twice the encoder rows of incremental); adaptive is incremental that also encodes again, each step, the kept tokens that have grown stale: those whose first-layer attention goes to tokens they have not seen by more than `staleness`",
    check: oneOf('encoder', ENCODER_MODES),
  },
  {
    name: 'refresh',
    scope: 'shared',
    cli: { flag: 'refresh', parse: 'integer' },
    takes: 'an integer >= 1, below steps',
    default: 'never',
    doc: 'with encoder incremental, delayed or adaptive: every step with step % refresh == 0 re-encodes every clean token (refresh 1 is exact)',
    check: (v) => (Number.isInteger(v) && (v as number) >= 1 ? undefined : 'must be an integer >= 1'),
  },
  {
    name: 'staleness',
    scope: 'shared',
    cli: { flag: 'staleness', parse: 'number' },
    takes: 'a number in [0, 1]',
    default: String(DEFAULT_STALENESS),
    doc: `with encoder adaptive: a kept token is encoded again when more than this share of its first-layer attention goes to tokens that joined after it was last encoded (at most ${REENCODE_PER_FRESH} kept tokens per new token each step, the stalest first); 1 never does (incremental)`,
    check: (v) => (typeof v === 'number' && v >= 0 && v <= 1 ? undefined : 'must be a number in [0, 1]'),
  },
  {
    name: 'greedy',
    scope: 'shared',
    cli: { flag: 'greedy', parse: 'switch' },
    takes: 'true or false',
    default: 'false',
    doc: 'take the most probable token everywhere',
    check: (v) => (typeof v === 'boolean' ? undefined : 'must be true or false'),
  },
  {
    name: 'signal',
    scope: 'shared',
    takes: 'an AbortSignal',
    default: 'none',
    doc: 'cancels within one step; the engine stays usable',
    check: isSignal,
  },
  {
    name: 'placeholder',
    scope: 'shared',
    takes: `a string of at most ${MAX_PLACEHOLDER_LENGTH} characters`,
    default: '"▯"',
    doc: 'shown in step texts for positions not revealed yet',
    check: (v) =>
      typeof v === 'string' && v.length <= MAX_PLACEHOLDER_LENGTH
        ? undefined
        : `must be a string of at most ${MAX_PLACEHOLDER_LENGTH} characters`,
  },
];

/** One option of `createEngine`, as the API checks it and the README describes it. */
export interface EngineOption {
  name: string;
  /** What it takes. */
  takes: string;
  /**
   * What stands in when it is not given: the value the code uses (from ENGINE_DEFAULTS), or,
   * where no one value does, what the code does instead ("the manifest's default").
   */
  default: string | number | boolean;
  doc: string;
  check: Check;
}

/**
 * The createEngine options whose default is one value, as the code uses it: `GpuModel.load`
 * (maxBatch, weightStorage), the downloads (stallTimeout) and the engine (warmUp). The table
 * below, the README and the JSDoc of EngineOptions show these (tests/assets/options-table.test.ts).
 */
export const ENGINE_DEFAULTS = {
  maxBatch: GPU_MODEL_DEFAULTS.maxBatch,
  weightStorage: GPU_MODEL_DEFAULTS.weightStorage,
  stallTimeout: DEFAULT_STALL_TIMEOUT,
  warmUp: false,
} as const satisfies EngineOptions;

const functions =
  (...names: string[]) =>
  (v: unknown) =>
    isObject(v) && names.every((n) => typeof v[n] === 'function');

/** Every option of `createEngine` (browser and Node entries), checked before anything loads. */
export const ENGINE_OPTIONS: readonly EngineOption[] = [
  {
    name: 'model',
    takes:
      'a manifest id, a model directory URL (https:, /, ./), a model folder the user picked (File[], FileList or a directory handle), a Lightning .ckpt as a Blob, a local model id local:<name>, or a model opened or in memory { config, weights } (opened by loadModel, or a Map of tensors); Node: also a directory or a .ckpt path',
    default: "the manifest's default",
    doc: 'the model to load; a picked folder is read from its files and kept in the cache as local:<folder name>, a .ckpt is converted in the page into the cache (importCheckpoint with its defaults) and loaded from there, a local id loads from the cache, offline',
    check: (v) =>
      typeof v === 'string' || isLocalModel(v) || (isObject(v) && isObject(v.config) && isWeights(v.weights))
        ? undefined
        : 'must be a manifest id, a URL, a path, a model folder (File[], FileList, a directory handle), a .ckpt Blob or a model { config, weights }',
  },
  {
    name: 'manifestUrl',
    takes: 'a URL (Node: also a path)',
    default: 'the manifest packaged with the engine',
    doc: 'where model ids are looked up; its models load from beside it (the packaged ones from where the bundler emitted them)',
    check: (v) => (typeof v === 'string' || v instanceof URL ? undefined : 'must be a URL or a path'),
  },
  {
    name: 'gpu',
    takes: 'a GpuContext (requestGpu())',
    default: 'a device of its own',
    doc: 'a device to share; dispose() leaves it open',
    check: (v) =>
      isObject(v) && typeof v.device === 'object' && v.device !== null
        ? undefined
        : 'must be a GpuContext from requestGpu()',
  },
  {
    name: 'maxBatch',
    takes: 'an integer >= 1',
    default: ENGINE_DEFAULTS.maxBatch,
    doc: 'the largest batch generateBatch takes (it sizes the buffers)',
    check: (v) => (Number.isInteger(v) && (v as number) >= 1 ? undefined : 'must be an integer >= 1'),
  },
  {
    name: 'weightStorage',
    takes: WEIGHT_STORAGES.join(' | '),
    default: ENGINE_DEFAULTS.weightStorage,
    doc: 'how matmul weights and the embedding sit on the GPU: auto keeps f16 files f16 (exact), f32 widens them at load, f16 also rounds f32 files (lossy)',
    check: oneOf('weightStorage', WEIGHT_STORAGES),
  },
  {
    name: 'onProgress',
    takes: 'a function of { phase, file, loaded, total, loadedBytes, totalBytes, ms, cached, warning }',
    default: 'none',
    doc: "the load as it goes: convert (a .ckpt converted in the page: the model's bytes written), download (each file's bytes as they arrive: loaded of total for the file, loadedBytes of totalBytes for all shards), verify (each shard's size and sha256), upload (shards are read as they are uploaded: their download and verify events come between its first event and its last), compile, warm-up; a phase's last event has its ms; a warning event says what the load survived (a cache write refused, a damaged cached copy)",
    check: (v) => (typeof v === 'function' ? undefined : 'must be a function'),
  },
  {
    name: 'signal',
    takes: 'an AbortSignal',
    default: 'none',
    doc: "cancels the load, downloads and GPU set-up alike: createEngine rejects with PgmError('aborted')",
    check: isSignal,
  },
  {
    name: 'stallTimeout',
    takes: 'milliseconds > 0, or Infinity',
    default: ENGINE_DEFAULTS.stallTimeout,
    doc: "a download that receives less than 16 KiB in this time (waiting for the headers too) fails with PgmError('io')",
    check: (v) =>
      typeof v === 'number' && v > 0 && (v <= 2 ** 31 - 1 || v === Infinity)
        ? undefined
        : 'must be a number of milliseconds in (0, 2^31), or Infinity',
  },
  {
    name: 'cache',
    takes: 'true, false or a ModelStore { get, put, delete, keys }',
    default: 'true in browsers (the Cache API); Node: none',
    doc: 'keeps verified model files for the next load: shards by their sha256 (a damaged copy is evicted and downloaded again), config.json and manifests read from the network first and from the cache only when it fails (offline); a cache write that fails is a warning event, never silent',
    check: (v) =>
      typeof v === 'boolean' || functions('get', 'put', 'delete', 'keys')(v)
        ? undefined
        : 'must be true, false or a ModelStore { get, put, delete, keys }',
  },
  {
    name: 'warmUp',
    takes: 'true or false',
    default: ENGINE_DEFAULTS.warmUp,
    doc: "before createEngine resolves, one tiny generation through each forward pass (a PGM's incremental one too), so that the first real step builds nothing",
    check: (v) => (typeof v === 'boolean' ? undefined : 'must be true or false'),
  },
];

/** The longest name of a local model (a key and a line in a picker, not a document). */
export const MAX_NAME_LENGTH = 200;

const engineOption = (name: string): EngineOption => ENGINE_OPTIONS.find((o) => o.name === name)!;

/** Every option of `importCheckpoint` (the same kind of rows as createEngine's), checked before anything is read. */
export const IMPORT_OPTIONS: readonly EngineOption[] = [
  {
    name: 'name',
    takes: `a string of 1 to ${MAX_NAME_LENGTH} characters`,
    default: "the file's name without .ckpt",
    doc: "the model's id in the cache is local:<name>; a model of that name is replaced",
    check: (v) =>
      typeof v === 'string' && v.length >= 1 && v.length <= MAX_NAME_LENGTH
        ? undefined
        : `must be a string of 1 to ${MAX_NAME_LENGTH} characters`,
  },
  {
    name: 'dtype',
    takes: 'f16 | f32',
    default: 'f16',
    doc: 'how the weights are kept: f16 halves the cache and the load (each value rounded to nearest), f32 keeps them exact',
    check: oneOf('dtype', ['f16', 'f32']),
  },
  {
    name: 'ema',
    takes: 'true or false',
    default: 'true',
    doc: 'the EMA weights (ema.shadow_params) or the raw state_dict',
    check: (v) => (typeof v === 'boolean' ? undefined : 'must be true or false'),
  },
  {
    name: 'shardSize',
    takes: 'an integer number of bytes >= 1',
    default: '67108864 (64 MiB)',
    doc: 'shards of at most this size (a larger tensor gets one of its own); the conversion holds about one shard in memory',
    check: (v) =>
      Number.isSafeInteger(v) && (v as number) >= 1 ? undefined : 'must be an integer number of bytes >= 1',
  },
  {
    name: 'cache',
    takes: 'true or a ModelStore { get, put, delete, keys }',
    default: "true: this browser's Cache API (Node: none, give a store)",
    doc: 'where the converted model goes',
    check: (v) =>
      v === true || functions('get', 'put', 'delete', 'keys')(v)
        ? undefined
        : 'must be true or a ModelStore { get, put, delete, keys }',
  },
  {
    ...engineOption('onProgress'),
    takes: 'a function of { phase, file, loaded, total, loadedBytes, totalBytes, ms }',
    doc: "the conversion as it goes: convert events (file: the checkpoint; loadedBytes of totalBytes: the model's bytes written so far, and in all), the last with its ms",
  },
  {
    ...engineOption('signal'),
    doc: "cancels the conversion between two tensors: importCheckpoint rejects with PgmError('aborted'), and the shards written so far are evicted",
  },
];

const ENGINE_TABLE: Record<string, Check> = Object.fromEntries(ENGINE_OPTIONS.map((o) => [o.name, o.check]));
const IMPORT_TABLE: Record<string, Check> = Object.fromEntries(IMPORT_OPTIONS.map((o) => [o.name, o.check]));

/** The options of `createEngine`: an object of known options, each of its type (or undefined). */
export function checkEngineOptionTypes(options: unknown): void {
  checkFields(options, ENGINE_TABLE, 'createEngine: ');
}

/** The options of `importCheckpoint`: an object of known options, each of its type (or undefined). */
export function checkImportOptionTypes(options: unknown): void {
  checkFields(options, IMPORT_TABLE, 'importCheckpoint: ');
}

const tableOf = (scope: GenerationOption['scope']): Record<string, Check> =>
  Object.fromEntries(GENERATION_OPTIONS.filter((o) => o.scope === scope).map((o) => [o.name, o.check]));
const SEQUENCE_OPTIONS = tableOf('sequence');
const SHARED_OPTIONS = tableOf('shared');

/** A value for an error message, with its type when the type is the mistake ("string \"16\""). */
function typed(v: unknown): string {
  const type = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return type === 'number' ? String(v) : `${type} ${brief(v)}`; // String: JSON would write NaN as null
}

function checkFields(options: unknown, table: Record<string, Check>, where: string, extra: string[] = []): void {
  if (!isObject(options)) fail('option', `${where}options must be an object, got ${typed(options)}`);
  for (const [name, value] of Object.entries(options)) {
    if (extra.includes(name)) continue;
    const check = Object.hasOwn(table, name) ? table[name] : undefined;
    if (!check)
      fail(
        'option',
        `${where}unknown option ${brief(name)}; the options are ${[...Object.keys(table), ...extra].join(', ')}`,
      );
    if (value === undefined) continue;
    const problem = check(value);
    if (problem !== undefined)
      fail(
        'option',
        problem.startsWith('must') ? `${where}${name} ${problem}, got ${typed(value)}` : `${where}${problem}`,
      );
  }
}

/** The options of `generate`: an object of known options, each of its type (or undefined). */
export function checkGenerateOptionTypes(options: unknown): void {
  checkFields(options, { ...SEQUENCE_OPTIONS, ...SHARED_OPTIONS }, '');
}

/** The options of `generateBatch`: shared options and a non-empty array of sequence options. */
export function checkBatchOptionTypes(options: unknown): void {
  checkFields(options, SHARED_OPTIONS, '', ['sequences']);
  const { sequences } = options as { sequences?: unknown };
  if (!Array.isArray(sequences) || sequences.length === 0)
    fail('option', `sequences must be a non-empty array of { prompt | infill, seed }, got ${typed(sequences)}`);
  sequences.forEach((s, b) => checkFields(s, SEQUENCE_OPTIONS, `sequence ${b}: `));
}

/** A piece of an infill template: known text, or a hole of `tokens` tokens to generate. */
export type TemplatePart = { text: string } | { hole: number };

const HOLE_SYNTAX =
  'a hole is {{n}} with n a whole number of tokens >= 1 (for text with "{{" in it, give infill segments [{ position, text }])';

/**
 * Split an infill template into text and holes. `{{n}}` is a hole of n >= 1 tokens; any other
 * `{{` is a mistake, reported with the template. A single space before a hole goes with the
 * hole: GPT-2 tokens carry their leading space, so "The {{3}} sat" reads "The" + 3 tokens +
 * " sat" rather than leaving a lone space token before the generated ones.
 */
export function parseInfillTemplate(template: string, where = ''): TemplatePart[] {
  const bad = (what: string): never =>
    fail('option', `${where}infill template ${brief(template)}: ${what}; ${HOLE_SYNTAX}`);
  const parts: TemplatePart[] = [];
  const text = (t: string) => t && parts.push({ text: t });
  let at = 0;
  for (;;) {
    const open = template.indexOf('{{', at);
    if (open < 0) break;
    const close = template.indexOf('}}', open + 2);
    if (close < 0) bad(`"{{" at character ${open + 1} is never closed`);
    const inner = template.slice(open + 2, close);
    const tokens = /^\d{1,9}$/.test(inner) ? Number(inner) : NaN;
    if (!(tokens >= 1)) bad(`${brief(template.slice(open, close + 2), 24)} is not a hole`);
    text(template.slice(at, template[open - 1] === ' ' && open > at ? open - 1 : open));
    parts.push({ hole: tokens });
    at = close + 2;
  }
  text(template.slice(at));
  return parts;
}

/** What resolving needs of the engine: its model's config and vocabulary, and its batch capacity. */
export interface ResolveContext {
  config: ModelConfig;
  vocabulary: Vocabulary;
  maxBatch: number;
}

/** Options ready for the samplers. */
export interface ResolvedGeneration {
  plans: SequencePlan[];
  sampling: SamplingOptions;
  placeholder?: string;
  signal?: AbortSignal;
}

/**
 * Defaults, model-derived bounds and the known tokens of each sequence, for options whose types
 * were checked (checkGenerateOptionTypes, checkBatchOptionTypes).
 */
export function resolveGenerationOptions(
  options: SharedOptions & { sequences: SequenceOptions[] },
  model: ResolveContext,
): ResolvedGeneration {
  const c = model.config;
  if (options.sequences.length > model.maxBatch)
    fail(
      'option',
      `batch of ${options.sequences.length} exceeds this engine's maxBatch ${model.maxBatch}; create the engine with a larger maxBatch`,
    );
  if (options.length !== undefined && (options.length < 2 || options.length > c.length))
    fail('option', `length must be an integer in [2, ${c.length}] (the model length), got ${options.length}`);
  const texts = options.sequences.map((s, b) => knownText(s, b, model));
  const length = options.length ?? templateLength(texts) ?? c.length;
  const plans = texts.map((t, b) => {
    if (t.end > length) {
      const limit =
        options.length === undefined && length === c.length
          ? `the model's length is ${c.length}`
          : `length is ${length}`;
      fail('option', `sequence ${b}: ${t.what} needs positions up to ${t.end - 1} (position 0 is BOS), but ${limit}`);
    }
    return { known: t.known, seed: options.sequences[b].seed ?? Math.floor(Math.random() * 2 ** 31) };
  });
  const free = Math.min(...plans.map((p) => length - p.known.size));
  const sampling: SamplingOptions = {
    length,
    steps: options.steps ?? Math.max(1, Math.min(64, free)),
    order: options.order ?? 'random',
    schedule: options.schedule ?? 'uniform',
    temperature: options.temperature ?? 1,
    topP: options.topP ?? c.pNucleus,
    greedy: options.greedy ?? false,
    encoder: options.encoder ?? 'exact',
    refresh: options.refresh ?? 0,
    staleness: options.staleness ?? DEFAULT_STALENESS,
  };
  checkSampling(sampling, plans, c, options.staleness);
  return { plans, sampling, placeholder: options.placeholder, signal: options.signal };
}

/** The tokens a sequence's prompt or infill fixes, by position, and how far they reach. */
function knownText(s: SequenceOptions, b: number, { config, vocabulary }: ResolveContext): KnownText {
  const known = new Map<number, number>([[0, config.bosId]]);
  const result: KnownText = { known, end: 1, what: 'nothing', endsWithHole: false };
  const reach = (end: number, what: string) => {
    if (end > result.end) Object.assign(result, { end, what });
  };
  if (s.prompt !== undefined && s.infill !== undefined)
    fail('option', `sequence ${b}: give either prompt or infill, not both`);
  // Text that cannot fit is refused before it is tokenized (which costs time in proportion to it).
  const texts =
    typeof s.infill === 'string'
      ? [s.infill]
      : Array.isArray(s.infill)
        ? s.infill.map((seg) => seg.text)
        : [s.prompt ?? ''];
  const chars = texts.reduce((a, t) => a + t.length, 0);
  if (chars > MAX_CHARS_PER_TOKEN * config.length) {
    fail(
      'option',
      `sequence ${b}: ${s.prompt !== undefined ? 'the prompt' : 'the infill text'} has ${chars} characters, so at least ${Math.ceil(chars / MAX_CHARS_PER_TOKEN)} tokens, more than the model's length ${config.length}`,
    );
  }
  if (s.prompt) {
    const ids = vocabulary.encode(s.prompt);
    ids.forEach((id, i) => known.set(1 + i, id));
    reach(1 + ids.length, `the prompt (${ids.length} tokens)`);
  } else if (typeof s.infill === 'string') {
    let position = 1;
    let textTokens = 0;
    let holeTokens = 0;
    const parts = parseInfillTemplate(s.infill, `sequence ${b}: `);
    for (const part of parts) {
      if ('hole' in part) {
        position += part.hole;
        holeTokens += part.hole;
      } else {
        const ids = vocabulary.encode(part.text);
        ids.forEach((id, i) => known.set(position + i, id));
        position += ids.length;
        textTokens += ids.length;
      }
    }
    reach(position, `the infill template ${brief(s.infill, 60)} (${textTokens} text and ${holeTokens} hole tokens)`);
    result.endsWithHole = parts.length > 0 && 'hole' in parts[parts.length - 1];
  } else if (s.infill) {
    if (s.infill.length > config.length)
      fail(
        'option',
        `sequence ${b}: ${s.infill.length} infill segments for a model of length ${config.length}; give at most one segment per position`,
      );
    for (const seg of s.infill) {
      const ids = vocabulary.encode(seg.text);
      ids.forEach((id, i) => {
        if (known.has(seg.position + i))
          fail('option', `sequence ${b}: infill segments overlap at position ${seg.position + i}`);
        known.set(seg.position + i, id);
      });
      reach(seg.position + ids.length, `the infill segment at ${seg.position} (${ids.length} tokens)`);
    }
  }
  return result;
}

/** The bounds of the sampling options, derived from the model and the known tokens of each sequence. */
function checkSampling(
  o: SamplingOptions,
  plans: readonly SequencePlan[],
  c: ModelConfig,
  staleness: number | undefined,
): void {
  const bad = (msg: string): never => fail('option', msg);
  if (o.steps < 1) bad(`steps must be a positive integer, got ${o.steps}`);
  if (c.arch === 'mdlm' && o.order !== 'random')
    bad(`the MDLM sampler (ddpm_cache) reveals positions at random; order ${o.order} needs a PGM`);
  if (!o.greedy && !(o.temperature >= MIN_TEMPERATURE && o.temperature <= MAX_TEMPERATURE)) {
    bad(
      `temperature must be in ${TEMPERATURE_RANGE}, got ${o.temperature}: the sampler scales f32 logits by 1/T, which can overflow f32 below ${MIN_TEMPERATURE.toExponential()}; for the T -> 0 limit use greedy`,
    );
  }
  if (!(o.topP > 0 && o.topP <= 1)) bad(`topP must be in (0, 1], got ${o.topP}`);
  if (o.encoder !== 'exact' && c.arch !== 'pgm')
    bad(
      `encoder ${o.encoder} needs a PGM: an MDLM has no clean set to keep keys and values of (it runs every position each step)`,
    );
  if (o.refresh > 0 && o.encoder === 'exact')
    bad(
      `refresh ${o.refresh} applies to encoder incremental, delayed or adaptive; the exact encoder re-encodes every step`,
    );
  // Step 0 encodes everything anyway: a refresh no later step reaches would silently mean never.
  if (o.refresh >= o.steps)
    bad(
      `refresh ${o.refresh} is not below steps ${o.steps}: no step after the first would re-encode, the same as no refresh; give a refresh below ${o.steps}, or none`,
    );
  if (staleness !== undefined && o.encoder !== 'adaptive')
    bad(`staleness ${staleness} applies to encoder adaptive; encoder ${o.encoder} never re-encodes by staleness`);
  plans.forEach((plan, b) => {
    const free = o.length - plan.known.size;
    if (free === 0) bad(`sequence ${b}: nothing to generate (every position < ${o.length} is known)`);
    if (c.arch === 'pgm' && o.steps > free)
      bad(`steps ${o.steps} exceeds the ${free} positions to generate in sequence ${b}`);
    if (c.arch === 'mdlm' && o.steps > MDLM_STEPS_PER_POSITION * free) {
      bad(
        `steps ${o.steps} exceeds ${MDLM_STEPS_PER_POSITION} x the ${free} positions to generate in sequence ${b} (${MDLM_STEPS_PER_POSITION * free}), the most an MDLM takes`,
      );
    }
  });
}

/**
 * The longest GPT-2 token is 128 bytes of UTF-8, and a UTF-16 code unit takes at least one
 * byte: text of n code units is at least n / 128 tokens (a reduced vocabulary only splits more).
 */
export const MAX_CHARS_PER_TOKEN = 128;

/** What a sequence's prompt or infill fixes: tokens by position (BOS at 0), and the first position after them. */
interface KnownText {
  known: Map<number, number>;
  end: number;
  /** What reaches `end`, for messages. */
  what: string;
  /** An infill template that ends with a hole: it fixes the length when none is given. */
  endsWithHole: boolean;
}

/**
 * The length a batch's infill templates fix when no length is given: where those that end
 * with a hole end (they must agree); undefined when none does.
 */
function templateLength(texts: KnownText[]): number | undefined {
  const ends = [...new Set(texts.filter((t) => t.endsWithHole).map((t) => t.end))];
  if (ends.length > 1)
    fail(
      'option',
      `the infill templates end with holes at different lengths (${ends.join(', ')}); make them end at the same position or give a length`,
    );
  return ends[0];
}
