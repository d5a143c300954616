import { fail } from '../errors.js';
import { checkAborted } from '../weights/fetch.js';
import {
  validateModelConfig,
  type ModelConfig,
  type ModelDirConfig,
  type PreQueryMode,
  type QueryProcessMode,
  type ShardInfo,
} from '../weights/config.js';
import { DTYPE_BYTES, encodeFloats, type SafetensorsDtype } from '../weights/floats.js';
import {
  encodeHeader,
  writeSafetensors,
  type FileSink,
  type TensorBytes,
  type TensorSpec,
} from '../weights/safetensors.js';
import type { WeightMap } from '../weights/host-tensor.js';
import { isBuffer, parameterMismatches } from '../weights/parameters.js';
import { Checkpoint, StorageRef, describeValue, lookup, toPlain } from './checkpoint.js';
import { TorchTensor } from './pickle.js';

export const CONVERTER = 'pgm-webgpu convert 1';
/**
 * The default shard size, 64 MiB: every browser's Cache API keeps shards this size (an
 * ephemeral Chromium context refuses entries of 256 MiB and more; see the README), and a load
 * holds one shard at a time. A tensor larger than this gets a shard of its own.
 */
export const DEFAULT_SHARD_SIZE = 64 * 1024 * 1024;
/** A tensor is converted this many values at a time (4 MiB of float32): a conversion's memory does not grow with its largest tensor. */
export const PIECE_VALUES = 2 ** 20;

export interface ReadOptions {
  /** Take `ema.shadow_params` (default) rather than the raw `state_dict`. */
  ema?: boolean;
}

export interface ConvertOptions extends ReadOptions {
  dtype?: 'f32' | 'f16';
  /** Start a new shard before one would exceed this many bytes (default 64 MiB). */
  shardSize?: number;
  /** Stops the conversion between tensors; what it wrote is removed (DirSink.abort). */
  signal?: AbortSignal;
  /** Values read and converted at a time (default PIECE_VALUES; tests scale it down). */
  pieceValues?: number;
}

/** A checkpoint's backbone, resolved to what the engine needs; tensors are still unread. */
export interface CheckpointModel {
  config: ModelConfig;
  /** Backbone parameters in state_dict order (buffers removed), EMA or raw. */
  parameters: { name: string; shape: number[]; tensor: TorchTensor }[];
  /** Provenance for config.json `source`. */
  source: Record<string, unknown>;
  /** state_dict entries outside the backbone, not converted. */
  ignored: string[];
  warnings: string[];
}

type Plain = Record<string, unknown>;
const at = (o: unknown, path: string): unknown =>
  path
    .split('.')
    .reduce<unknown>((v, k) => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Plain)[k] : undefined), o);
const shapeOf = (t: TorchTensor): number[] => [...t.shape];
const sameShape = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

/** Indices `i` of keys `<prefix><i>.`; must be 0..n-1. */
function blockCount(names: string[], prefix: string, file: string): number {
  const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\d+)\\.`);
  const ids = new Set<number>();
  for (const n of names) {
    const m = re.exec(n);
    if (m) ids.add(Number(m[1]));
  }
  for (let i = 0; i < ids.size; i++) {
    if (!ids.has(i))
      fail('architecture', `${file}: ${prefix}* block indices are not 0..${ids.size - 1} (block ${i} is missing)`);
  }
  return ids.size;
}

type Named = [string, TorchTensor];

/** The state_dict's backbone tensors (`backbone.` stripped) and the names outside it. */
function backboneOf(ckpt: Checkpoint): { backbone: Named[]; ignored: string[] } {
  const file = ckpt.name;
  const root = ckpt.root;
  const stateDict =
    lookup(root, 'state_dict') ??
    (root instanceof Map && [...root.values()].every((v) => v instanceof TorchTensor) ? root : undefined);
  if (!(stateDict instanceof Map))
    fail(
      'checkpoint',
      `${file}: no state_dict (top-level keys: ${root instanceof Map ? [...root.keys()].map(String).join(', ') : describeValue(root)})`,
    );
  const all = [...(stateDict as Map<unknown, unknown>).entries()].map(([k, v]) => {
    if (typeof k !== 'string' || !(v instanceof TorchTensor))
      fail('checkpoint', `${file}: state_dict entry ${describeValue(k)} is not a named tensor`);
    return [k, v] as Named;
  });
  const prefixed = all.some(([k]) => k.startsWith('backbone.'));
  if (!prefixed) return { backbone: all, ignored: [] };
  return {
    backbone: all.filter(([k]) => k.startsWith('backbone.')).map(([k, v]) => [k.slice('backbone.'.length), v]),
    ignored: all.filter(([k]) => !k.startsWith('backbone.')).map(([k]) => k),
  };
}

/** PGM (encoder.blocks.*, decoder.*) or MDLM (blocks.*), from the tensor names. */
function architectureOf(names: string[], file: string): 'pgm' | 'mdlm' {
  const has = (p: string): boolean => names.some((n) => n.startsWith(p));
  if (has('encoder.blocks.') && has('decoder.') && !has('blocks.')) return 'pgm';
  if (has('blocks.') && !has('encoder.') && !has('decoder.')) return 'mdlm';
  const found = [...new Set(names.map((n) => n.split('.').slice(0, 2).join('.')))].slice(0, 12).join(', ');
  return fail(
    'architecture',
    `${file}: unrecognized backbone (found ${found || 'no tensors'}); expected a PGM PartitionDIT (encoder.blocks.*, decoder.*) or an MDLM DIT (blocks.*)`,
  );
}

/**
 * The model config: sizes read off the tensor shapes, cross-checked against the training
 * config (`cfg`), which alone gives the head count and the length.
 */
function configOf(
  file: string,
  arch: 'pgm' | 'mdlm',
  shapes: Map<string, number[]>,
  cfg: Plain | undefined,
  warnings: string[],
): ModelConfig {
  const names = [...shapes.keys()];
  const need = (name: string, rank: number): number[] => {
    const s = shapes.get(name) ?? fail('architecture', `${file}: ${arch.toUpperCase()} backbone lacks ${name}`);
    if (s.length !== rank) fail('architecture', `${file}: ${name} has rank ${s.length}, expected ${rank}`);
    return s;
  };
  const [V, D] = need('vocab_embed.embedding', 2);
  const [C] = need('sigma_map.mlp.0.weight', 2);
  const [F] = need(`${arch === 'pgm' ? 'encoder.blocks.0' : 'blocks.0'}.mlp.0.weight`, 2);
  const encoderBlocks = arch === 'pgm' ? blockCount(names, 'encoder.blocks.', file) : 0;
  const decoderBlocks = arch === 'pgm' ? blockCount(names, 'decoder.layers.', file) : 0;
  const nBlocks = arch === 'mdlm' ? blockCount(names, 'blocks.', file) : 0;
  const queryProcessMode: QueryProcessMode = names.some((n) => n.startsWith('decoder.group_swap.query_processor.0.'))
    ? 'mlp4'
    : 'linear';

  const cfgInt = (path: string, required: boolean): number | undefined => {
    const v = at(cfg, path);
    if (v === undefined || v === null) {
      if (required)
        fail('checkpoint', `${file}: hyper_parameters.config.${path} is missing; it cannot be read from tensor shapes`);
      return undefined;
    }
    if (typeof v !== 'number' || !Number.isInteger(v))
      fail('checkpoint', `${file}: hyper_parameters.config.${path} = ${JSON.stringify(v)} is not an integer`);
    return v as number;
  };
  const crossCheck = (path: string, actual: number, what: string): void => {
    const v = cfgInt(path, false);
    if (v !== undefined && v !== actual)
      fail('architecture', `${file}: config ${path} = ${v} but the tensors have ${what} = ${actual}`);
  };
  crossCheck('model.hidden_size', D, 'hidden size');
  crossCheck('model.cond_dim', C, 'cond dim');
  if (arch === 'pgm') {
    crossCheck('model.encoder.n_blocks', encoderBlocks, 'encoder blocks');
    crossCheck('model.decoder.n_blocks', decoderBlocks, 'decoder blocks');
  } else crossCheck('model.n_blocks', nBlocks, 'blocks');
  const mlpRatio = at(cfg, 'model.mlp_ratio');
  if (typeof mlpRatio === 'number' && mlpRatio * D !== F)
    warnings.push(`config model.mlp_ratio = ${mlpRatio} but mlp.0.weight has ${F} rows; using ${F}`);

  let preQueryMode: PreQueryMode = 'learn+freqs';
  if (arch === 'pgm') {
    const mode = at(cfg, 'model.swap.pre_query_mode');
    if (mode === undefined)
      warnings.push('config model.swap.pre_query_mode is missing; assuming "learn+freqs" (the released default)');
    else preQueryMode = mode as PreQueryMode;
    const qpm = at(cfg, 'model.swap.query_process_mode');
    if (qpm !== undefined && qpm !== queryProcessMode)
      fail(
        'architecture',
        `${file}: config model.swap.query_process_mode = ${JSON.stringify(qpm)} but the query_processor tensors are ${queryProcessMode}`,
      );
    const norm = at(cfg, 'model.swap.normalize_mode');
    if (norm !== undefined && norm !== 'layernorm')
      fail(
        'architecture',
        `${file}: model.swap.normalize_mode = ${JSON.stringify(norm)} is not supported (only layernorm)`,
      );
  }
  const algoName = at(cfg, 'algo.name');
  if (typeof algoName === 'string' && (arch === 'pgm' ? /^mdlm$/i.test(algoName) : /partition|pgm/i.test(algoName))) {
    warnings.push(
      `config algo.name = ${JSON.stringify(algoName)} but the tensors are a ${arch.toUpperCase()} backbone`,
    );
  }
  const timeCond = at(cfg, 'algo.time_conditioning') ?? at(cfg, 'time_conditioning');
  if (timeCond === true) warnings.push('config enables time_conditioning; the engine always conditions on sigma = 0');

  const config = validateModelConfig(
    {
      arch,
      vocabSize: V,
      hiddenSize: D,
      nHeads: cfgInt('model.n_heads', true),
      condDim: C,
      mlpDim: F,
      length: cfgInt('model.length', true),
      encoderBlocks,
      decoderBlocks,
      nBlocks,
      preQueryMode,
      queryProcessMode,
      maskId: V - 1,
      bosId: V - 2,
      pNucleus: at(cfg, 'sampling.p_nucleus') ?? 1,
      // A reduced vocabulary (model id -> GPT-2 id) travels in the training config.
      ...(Array.isArray(at(cfg, 'data.vocab_map')) ? { vocabMap: at(cfg, 'data.vocab_map') } : {}),
    },
    `${file} (hyper_parameters.config)`,
  );
  const problems = parameterMismatches(config, shapes);
  if (problems.length)
    fail(
      'architecture',
      `${file}: backbone tensors do not match a ${arch.toUpperCase()} with this config: ${problems.join('; ')}`,
    );
  return config;
}

/**
 * The EMA copies of the backbone parameters: `ema.shadow_params` lists the parameters in
 * state_dict order (buffers excluded), then those of non-backbone modules (the noise schedule).
 */
function emaWeights(
  ckpt: Checkpoint,
  params: Named[],
  ignored: string[],
  warnings: string[],
): { tensors: TorchTensor[]; provenance: Record<string, unknown> } {
  const file = ckpt.name;
  const ema = lookup(ckpt.root, 'ema');
  if (ema === undefined)
    fail('checkpoint', `${file}: no EMA weights (no "ema" entry); pass --no-ema to convert the raw state_dict`);
  const shadow = lookup(ema, 'shadow_params');
  if (!Array.isArray(shadow) || !shadow.every((t) => t instanceof TorchTensor))
    fail('checkpoint', `${file}: ema.shadow_params is not a list of tensors`);
  const list = shadow as TorchTensor[];
  if (list.length < params.length || list.length > params.length + ignored.length) {
    fail(
      'checkpoint',
      `${file}: ema.shadow_params has ${list.length} tensors but the backbone has ${params.length} parameters (state_dict without buffers); cannot map EMA weights`,
    );
  }
  params.forEach(([name, t], i) => {
    if (!sameShape(list[i].shape, t.shape)) {
      fail(
        'checkpoint',
        `${file}: ema.shadow_params[${i}] has shape [${list[i].shape.join(', ')}] but state_dict parameter #${i} ${name} has [${t.shape.join(', ')}]`,
      );
    }
  });
  if (list.length > params.length)
    warnings.push(`ignored ${list.length - params.length} trailing EMA tensor(s) of non-backbone modules`);
  const num = (v: unknown): unknown => (typeof v === 'bigint' ? Number(v) : v);
  return {
    tensors: list.slice(0, params.length),
    provenance: {
      decay: num(lookup(ema, 'decay')),
      numUpdates: num(lookup(ema, 'num_updates')),
      shadowParams: list.length,
    },
  };
}

/** Resolve architecture, config and the tensors to convert, without reading tensor data. */
export function inspectCheckpoint(ckpt: Checkpoint, opts: ReadOptions = {}): CheckpointModel {
  const file = ckpt.name;
  const useEma = opts.ema ?? true;
  const warnings: string[] = [];
  const { backbone, ignored } = backboneOf(ckpt);
  const shapes = new Map(backbone.map(([k, v]) => [k, shapeOf(v)]));
  const arch = architectureOf([...shapes.keys()], file);
  const hp = toPlain(lookup(ckpt.root, 'hyper_parameters'));
  const cfg = (at(hp, 'config') ?? (at(hp, 'model') !== undefined ? hp : undefined)) as Plain | undefined;
  const config = configOf(file, arch, shapes, cfg, warnings);

  const params = backbone.filter(([k]) => !isBuffer(k));
  const source: Record<string, unknown> = { file, converter: CONVERTER, weights: useEma ? 'ema' : 'raw' };
  let chosen = params.map(([, t]) => t);
  if (useEma) {
    const ema = emaWeights(ckpt, params, ignored, warnings);
    chosen = ema.tensors;
    source.ema = ema.provenance;
  }
  for (const t of chosen)
    if (!(t.storage instanceof StorageRef)) fail('checkpoint', `${file}: a parameter tensor has no checkpoint storage`);
  if (cfg !== undefined) source.hyperParameters = cfg;
  const lightning = lookup(ckpt.root, 'pytorch-lightning_version');
  if (typeof lightning === 'string') source.lightningVersion = lightning;
  for (const k of ['global_step', 'epoch']) {
    const v = lookup(ckpt.root, k);
    if (typeof v === 'number') source[k === 'global_step' ? 'globalStep' : k] = v;
  }
  if (ignored.length) source.ignored = ignored;
  if (warnings.length) source.warnings = warnings;
  return {
    config,
    parameters: params.map(([name], i) => ({ name, shape: shapeOf(chosen[i]), tensor: chosen[i] })),
    source,
    ignored,
    warnings,
  };
}

/** Read a checkpoint's backbone straight into float32 host tensors (no files written). */
export async function readCheckpointWeights(
  ckpt: Checkpoint,
  opts: ReadOptions = {},
): Promise<CheckpointModel & { weights: WeightMap }> {
  const model = inspectCheckpoint(ckpt, opts);
  const weights: WeightMap = new Map();
  for (const p of model.parameters)
    weights.set(p.name, { shape: p.shape, data: await ckpt.readFloat32(p.tensor, p.name) });
  return { ...model, weights };
}

/** Where a conversion writes its files (Node: a directory; see `dirSink` in sink-node.ts). */
export interface DirSink {
  /** A new file of `size` bytes (a sink that keeps files in memory allocates them once). */
  create(file: string, size: number): Promise<FileSink>;
  writeText(file: string, text: string): Promise<void>;
  /** Make the files written the directory's model, all at once (a sink that writes in place has none). */
  commit?(): Promise<void>;
  /** Discard the files written (a failed or interrupted conversion). */
  abort?(): Promise<void>;
}

export interface ConvertResult {
  dirConfig: ModelDirConfig;
  /** Every file written, config.json last. */
  files: string[];
  params: number;
  ignored: string[];
  warnings: string[];
}

const shardName = (i: number, n: number): string =>
  n === 1
    ? 'model.safetensors'
    : `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;

/** One tensor of a model being written: its name, dtype and shape, and its bytes when they are due (whole or in pieces). */
export interface TensorSource extends TensorSpec {
  bytes(): TensorBytes;
}

/** What a model directory is written from: its config, its tensors in order, and config.json's dtype and provenance (read once every tensor is written). */
export interface ModelToWrite {
  config: ModelConfig;
  dtype: 'f32' | 'f16';
  tensors: readonly TensorSource[];
  source(): Record<string, unknown>;
  /** The safetensors `__metadata__` of every shard. */
  metadata: Record<string, string>;
}

/**
 * Write a model directory, one tensor in memory at a time: the tensors in order, split greedily
 * into shards of at most `shardSize` bytes (a larger tensor gets a shard of its own), the index
 * when there are several, config.json last; then `out.commit()` makes them the directory's
 * model at once. On any failure (an abort of `signal` included) what was written is discarded.
 */
export async function writeModelDir(
  out: DirSink,
  model: ModelToWrite,
  opts: { shardSize?: number; signal?: AbortSignal; what?: string } = {},
): Promise<{ dirConfig: ModelDirConfig; files: string[] }> {
  const shardSize = opts.shardSize ?? DEFAULT_SHARD_SIZE;
  if (!(Number.isSafeInteger(shardSize) && shardSize > 0))
    fail('option', `--shard-size must be a positive integer number of bytes, got ${opts.shardSize}`);
  const sizeOf = (t: TensorSpec) => t.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[t.dtype];
  const groups: number[][] = [[]];
  let bytesInShard = 0;
  model.tensors.forEach((t, i) => {
    const current = groups[groups.length - 1];
    if (current.length && bytesInShard + sizeOf(t) > shardSize) {
      groups.push([i]);
      bytesInShard = sizeOf(t);
    } else {
      current.push(i);
      bytesInShard += sizeOf(t);
    }
  });
  const shards: ShardInfo[] = [];
  const weightMap: Record<string, string> = {};
  let totalSize = 0;
  const files: string[] = [];
  try {
    for (const [g, members] of groups.entries()) {
      const file = shardName(g, groups.length);
      const specs = members.map((i) => model.tensors[i]);
      const size = encodeHeader(specs, model.metadata).header.length + specs.reduce((a, t) => a + sizeOf(t), 0);
      const info = await writeSafetensors(
        await out.create(file, size),
        specs,
        (k) => {
          checkAborted(opts.signal, opts.what ?? 'the conversion');
          return model.tensors[members[k]].bytes();
        },
        model.metadata,
      );
      shards.push({ file, ...info });
      for (const i of members) {
        weightMap[model.tensors[i].name] = file;
        totalSize += sizeOf(model.tensors[i]);
      }
    }
    files.push(...shards.map((s) => s.file));
    if (shards.length > 1) {
      await out.writeText(
        'model.safetensors.index.json',
        `${JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2)}\n`,
      );
      files.push('model.safetensors.index.json');
    }
    const dirConfig: ModelDirConfig = {
      format: 'pgm-webgpu',
      formatVersion: 1,
      model: model.config,
      dtype: model.dtype,
      shards,
      source: model.source(),
    };
    await out.writeText('config.json', `${JSON.stringify(dirConfig, null, 2)}\n`);
    files.push('config.json');
    await out.commit?.();
    return { dirConfig, files };
  } catch (e) {
    await out.abort?.();
    throw e;
  }
}

/** Convert a checkpoint into a model directory, a piece of one tensor in memory at a time. */
export async function convertCheckpoint(
  ckpt: Checkpoint,
  out: DirSink,
  opts: ConvertOptions = {},
): Promise<ConvertResult> {
  const model = inspectCheckpoint(ckpt, opts);
  const dtype = opts.dtype ?? 'f32';
  const stDtype: SafetensorsDtype = dtype === 'f16' ? 'F16' : 'F32';
  const warnings = [...model.warnings];
  let overflow = 0;
  const tensors = model.parameters.map((p): TensorSource => ({
    name: p.name,
    dtype: stDtype,
    shape: p.shape,
    async *bytes() {
      for await (const values of ckpt.float32Chunks(p.tensor, p.name, opts.pieceValues ?? PIECE_VALUES)) {
        if (stDtype === 'F16') for (const v of values) if (Math.abs(v) > 65504 && Number.isFinite(v)) overflow++;
        yield encodeFloats(values, stDtype);
      }
    },
  }));
  const source = () => {
    if (overflow)
      warnings.push(`${overflow} value(s) exceed the float16 range and became infinite; convert with --dtype f32`);
    if (warnings.length) model.source.warnings = warnings;
    return model.source;
  };
  const metadata = {
    format: 'pt',
    producer: CONVERTER,
    arch: model.config.arch,
    weights: String(model.source.weights),
  };
  const { dirConfig, files } = await writeModelDir(
    out,
    { config: model.config, dtype, tensors, source, metadata },
    opts,
  );
  const params = model.parameters.reduce((a, p) => a + p.shape.reduce((x, y) => x * y, 1), 0);
  return { dirConfig, files, params, ignored: model.ignored, warnings };
}

/** A few lines describing a conversion, for the CLI. */
export function formatSummary(r: ConvertResult): string {
  const m = r.dirConfig.model;
  const blocks =
    m.arch === 'pgm'
      ? `${m.encoderBlocks} encoder + ${m.decoderBlocks} decoder blocks (${m.preQueryMode}, ${m.queryProcessMode})`
      : `${m.nBlocks} blocks`;
  const millions = (r.params / 1e6).toFixed(r.params < 1e6 ? 3 : 1);
  const lines = [
    `arch ${m.arch.toUpperCase()}, ${millions}M params, V=${m.vocabSize} D=${m.hiddenSize} H=${m.nHeads} C=${m.condDim} F=${m.mlpDim} L=${m.length}, ${blocks}`,
    `weights ${String(r.dirConfig.source?.weights)}, dtype ${r.dirConfig.dtype}, files: ${r.files.join(', ')}`,
  ];
  if (r.ignored.length)
    lines.push(
      `ignored ${r.ignored.length} non-backbone state_dict entr${r.ignored.length === 1 ? 'y' : 'ies'}: ${r.ignored.slice(0, 6).join(', ')}${r.ignored.length > 6 ? ', ...' : ''}`,
    );
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}
