import { Checkpoint } from '../convert/checkpoint.js';
import { DEFAULT_SHARD_SIZE, convertCheckpoint, formatSummary } from '../convert/convert.js';
import { dirSink } from '../convert/sink-node.js';
import { fileSource } from '../convert/source-node.js';
import { UsageError, parseBytes, parseCommandLine } from './args.js';

export const summary = 'convert a Lightning .ckpt (PGM or MDLM) into a model directory';

export const usage = `usage: pgm convert <file.ckpt> <outDir> [--dtype f32|f16] [--no-ema] [--shard-size BYTES]

  --dtype f32|f16     storage dtype of the safetensors shards (default f32)
  --no-ema            convert the raw state_dict instead of the EMA weights (sampling uses EMA)
  --shard-size BYTES  split into shards of at most this size, e.g. 67108864 or 64M (default 64M,
                      which every browser's Cache API keeps; a larger tensor gets its own shard)

A model already in <outDir> is replaced whole when the new one is complete: interrupted at any
moment (Ctrl-C removes the temporaries), the directory still holds a model that loads.`;

export async function run(argv: string[], signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      dtype: { type: 'string', default: 'f32' },
      'no-ema': { type: 'boolean', default: false },
      'shard-size': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals.length !== 2)
    throw new UsageError(`expected <file.ckpt> <outDir>, got ${positionals.length} argument(s)`, usage);
  const dtype = values.dtype;
  if (dtype !== 'f32' && dtype !== 'f16')
    throw new UsageError(`--dtype must be f32 or f16, got ${JSON.stringify(dtype)}`, usage);
  const shardSize =
    values['shard-size'] === undefined ? DEFAULT_SHARD_SIZE : parseBytes(values['shard-size'], '--shard-size', usage);
  const [input, outDir] = positionals;

  const source = await fileSource(input);
  try {
    const ckpt = await Checkpoint.open(source);
    const result = await convertCheckpoint(ckpt, await dirSink(outDir), {
      dtype,
      ema: !values['no-ema'],
      shardSize,
      signal,
    });
    console.log(`${input} -> ${outDir}\n${formatSummary(result)}`);
  } finally {
    await source.close();
  }
  return 0;
}
