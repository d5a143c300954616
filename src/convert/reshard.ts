/**
 * `pgm reshard`: a model directory rewritten into shards of another size (64 MiB by default,
 * what every browser's Cache API keeps), for model folders converted with larger shards. Every
 * shard is verified against config.json, the tensors are copied byte for byte, and the
 * directory is replaced whole (DirSink.commit), as a conversion does.
 */
import { fail } from '../errors.js';
import { MAX_CONFIG_BYTES, parseModelDirConfig, REMEDY, shardProblem, type ModelFiles } from '../weights/load.js';
import { parameterMismatches } from '../weights/parameters.js';
import { parseSafetensors, type SafetensorsTensor } from '../weights/safetensors.js';
import type { ModelDirConfig, ShardInfo } from '../weights/config.js';
import { writeModelDir, type DirSink, type TensorSource } from './convert.js';

export async function reshardModel(
  files: ModelFiles,
  out: DirSink,
  opts: { shardSize?: number; signal?: AbortSignal } = {},
): Promise<{ dirConfig: ModelDirConfig; files: string[] }> {
  const where = `${files.location.replace(/\/$/, '')}/config.json`;
  const configBytes = await files.read('config.json', { maxBytes: MAX_CONFIG_BYTES, signal: opts.signal });
  if (configBytes.length > MAX_CONFIG_BYTES)
    fail('config', `${where}: larger than ${MAX_CONFIG_BYTES} bytes, not a model config`);
  const dirConfig = parseModelDirConfig(new TextDecoder().decode(configBytes), where);
  const read = async (
    shard: ShardInfo,
  ): Promise<{ tensors: Map<string, SafetensorsTensor>; metadata: Record<string, string> }> => {
    const bytes = await files.read(shard.file, { maxBytes: shard.size, signal: opts.signal });
    const problem = await shardProblem(bytes, shard);
    if (problem) fail('integrity', `shard ${shard.file}: ${problem}; ${files.remedy ?? REMEDY.other}`);
    return parseSafetensors(bytes, shard.file);
  };
  // The tensors in shard order, each shard read once to list them and once to copy them (one in memory at a time).
  const tensors: TensorSource[] = [];
  const names = new Set<string>();
  let metadata: Record<string, string> = {};
  let current: { shard: ShardInfo; tensors: Map<string, SafetensorsTensor> } | undefined;
  for (const shard of dirConfig.shards) {
    const parsed = await read(shard);
    metadata = { ...parsed.metadata, ...metadata };
    for (const [name, t] of parsed.tensors) {
      if (names.has(name)) fail('safetensors', `${shard.file}: tensor ${name} also appears in an earlier shard`);
      names.add(name);
      tensors.push({
        name,
        dtype: t.dtype,
        shape: t.shape,
        async bytes() {
          if (current?.shard !== shard) current = { shard, tensors: (await read(shard)).tensors };
          return current.tensors.get(name)!.bytes;
        },
      });
    }
  }
  const problems = parameterMismatches(dirConfig.model, new Map(tensors.map((t) => [t.name, t.shape])));
  if (problems.length) fail('config', `${where}: the shards do not match the model config: ${problems.join('; ')}`);
  return writeModelDir(
    out,
    { config: dirConfig.model, dtype: dirConfig.dtype, tensors, source: () => dirConfig.source ?? {}, metadata },
    { ...opts, what: 'resharding' },
  );
}
