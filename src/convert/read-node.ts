/** Node: models straight from a Lightning `.ckpt`, or from a path that may be either. */
import { stat } from 'node:fs/promises';
import { PgmError } from '../errors.js';
import { checkAborted } from '../weights/fetch.js';
import type { ModelConfig } from '../weights/config.js';
import { loadModelDir } from '../weights/load-node.js';
import type { LoadOptions } from '../weights/load.js';
import type { HostTensor, WeightMap, Weights } from '../weights/host-tensor.js';
import { Checkpoint } from './checkpoint.js';
import { inspectCheckpoint, readCheckpointWeights, type CheckpointModel, type ReadOptions } from './convert.js';
import { fileSource } from './source-node.js';

/** What `use` makes of the checkpoint at `path`, the file open meanwhile. */
async function withCheckpoint<T>(path: string, use: (ckpt: Checkpoint) => Promise<T>): Promise<T> {
  const source = await fileSource(path);
  try {
    return await use(await Checkpoint.open(source));
  } finally {
    await source.close();
  }
}

/** Read a Lightning `.ckpt` straight into float32 weights (EMA by default), without writing files. */
export function loadCheckpoint(
  path: string,
  opts: ReadOptions = {},
): Promise<CheckpointModel & { weights: WeightMap }> {
  return withCheckpoint(path, (ckpt) => readCheckpointWeights(ckpt, opts));
}

/**
 * A `.ckpt` file opened: its config now (the pickle read and checked), its weights read tensor by
 * tensor as they are iterated (float32, EMA by default; each iteration opens the file again), so
 * that no more than one tensor is on the host at a time.
 */
async function openCheckpoint(
  path: string,
  opts: ReadOptions & Pick<LoadOptions, 'signal'>,
): Promise<{ config: ModelConfig; weights: Weights }> {
  const { config } = await withCheckpoint(path, async (ckpt) => inspectCheckpoint(ckpt, opts));
  async function* tensors(): AsyncGenerator<[string, HostTensor]> {
    const source = await fileSource(path);
    try {
      const ckpt = await Checkpoint.open(source);
      for (const p of inspectCheckpoint(ckpt, opts).parameters) {
        checkAborted(opts.signal);
        yield [p.name, { shape: p.shape, data: await ckpt.readFloat32(p.tensor, p.name) }];
      }
    } finally {
      await source.close();
    }
  }
  return { config, weights: { [Symbol.asyncIterator]: tensors } };
}

/** A model directory or a `.ckpt` file, opened: its weights are read as they are iterated (a directory's shard by shard, a checkpoint's tensor by tensor). */
export async function loadModelPath(
  path: string,
  opts: ReadOptions & LoadOptions = {},
): Promise<{ config: ModelConfig; weights: Weights }> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new PgmError('io', `${path}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`, { cause: e });
  });
  if (info.isDirectory()) return loadModelDir(path, opts);
  checkAborted(opts.signal);
  return openCheckpoint(path, opts);
}
