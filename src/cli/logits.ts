import { readFile, writeFile } from 'node:fs/promises';
import { fail } from '../errors.js';
import { GpuModel } from '../model/gpu-model.js';
import type { MdlmSequence, PgmSequence } from '../model/inputs.js';
import { loadModelPath } from '../convert/read-node.js';
import { requestNodeGpu } from '../node.js';
import { UsageError, parseCommandLine } from './args.js';

export const summary = 'run one forward pass and write the raw logits (float32) of a batch';

export const usage = `usage: pgm logits --model <dir|file.ckpt> --input <in.json> --out <out.bin>

  in.json, PGM:  {"sequences":[{"tokens":[...],"positions":[...],"queries":[...]}, ...]}
  in.json, MDLM: {"sequences":[{"tokens":[...]}, ...]}   (positions 0..n-1, equal n)
  out.bin: little-endian float32 logits of the backbone, [batch, maxQueries, V] (PGM, rows of
  padded queries are 0) or [batch, n, V] (MDLM). Prints the shape.`;

const intArray = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x));

export async function run(argv: string[], signal?: AbortSignal): Promise<number> {
  const { values, positionals } = parseCommandLine(
    argv,
    {
      model: { type: 'string' },
      input: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    usage,
  );
  if (values.help) {
    console.log(usage);
    return 0;
  }
  if (positionals.length) throw new UsageError(`unexpected argument ${JSON.stringify(positionals[0])}`, usage);
  if (!values.model || !values.input || !values.out)
    throw new UsageError('--model, --input and --out are required', usage);
  const text = await readFile(values.input, 'utf8').catch((e: Error) => fail('io', `${values.input}: ${e.message}`));
  let json: { sequences?: unknown };
  try {
    json = JSON.parse(text);
  } catch (e) {
    fail('shape', `${values.input}: not valid JSON (${(e as Error).message})`);
  }
  const sequences = json.sequences;
  if (!Array.isArray(sequences) || sequences.length === 0)
    fail('shape', `${values.input}: "sequences" must be a non-empty array`);

  const { config, weights } = await loadModelPath(values.model, { signal });
  const pgm = config.arch === 'pgm';
  sequences.forEach((s: Record<string, unknown>, b) => {
    const fields = pgm ? ['tokens', 'positions', 'queries'] : ['tokens'];
    for (const f of fields)
      if (!intArray(s?.[f]))
        fail(
          'shape',
          `${values.input}: sequences[${b}].${f} must be an array of integers (${config.arch.toUpperCase()} input)`,
        );
  });
  // The device goes before the process does: a device still open at exit can take Dawn down with SIGSEGV.
  const gpu = await requestNodeGpu();
  let model: GpuModel | undefined;
  try {
    model = await GpuModel.load(gpu, config, weights, { maxBatch: sequences.length });
    const logits = pgm
      ? await model.pgmLogits(sequences as PgmSequence[])
      : await model.mdlmLogits(sequences as MdlmSequence[]);
    const rows = pgm
      ? Math.max(...(sequences as PgmSequence[]).map((s) => s.queries.length))
      : (sequences as MdlmSequence[])[0].tokens.length;
    await writeFile(values.out, new Uint8Array(logits.buffer, logits.byteOffset, logits.byteLength)).catch((e: Error) =>
      fail('io', `${values.out}: cannot write the logits (${e.message})`),
    );
    console.log(`[${sequences.length}, ${rows}, ${config.vocabSize}]`);
  } finally {
    model?.dispose();
    gpu.device.destroy();
  }
  return 0;
}
