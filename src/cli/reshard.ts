import { DEFAULT_SHARD_SIZE } from '../convert/convert.js';
import { reshardModel } from '../convert/reshard.js';
import { dirSink } from '../convert/sink-node.js';
import { diskFiles } from '../weights/load-node.js';
import { UsageError, parseBytes, parseCommandLine } from './args.js';

export const summary = 'rewrite a converted model directory into shards of another size';

export const usage = `usage: pgm reshard <modelDir> [--shard-size BYTES]

  --shard-size BYTES  the largest shard, e.g. 67108864 or 64M (default 64M, which every
                      browser's Cache API keeps; a larger tensor gets its own shard)

Every shard is checked against config.json and the tensors are copied unchanged; the model is
replaced whole when the new shards are complete (interrupted, the directory still loads).`;

export async function run(argv: string[], signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    { 'shard-size': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    usage,
  );
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals.length !== 1)
    throw new UsageError(`expected <modelDir>, got ${positionals.length} argument(s)`, usage);
  const shardSize =
    values['shard-size'] === undefined ? DEFAULT_SHARD_SIZE : parseBytes(values['shard-size'], '--shard-size', usage);
  const [dir] = positionals;
  const { files } = await reshardModel(diskFiles(dir), await dirSink(dir), { shardSize, signal });
  console.log(`${dir}: ${files.join(', ')}`);
  return 0;
}
