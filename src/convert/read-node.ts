/** Node: models straight from a Lightning `.ckpt`, or from a path that may be either. */
import { stat } from 'node:fs/promises';
import { PgmError } from '../errors.js';
import { checkAborted } from '../model/fetch.js';
import type { ModelConfig } from '../model/config.js';
import { loadModelDir } from '../model/load-node.js';
import type { LoadOptions } from '../model/load.js';
import type { WeightMap, Weights } from '../model/tensor.js';
import { Checkpoint } from './checkpoint.js';
import { readCheckpointWeights, type CheckpointModel, type ReadOptions } from './convert.js';
import { fileSource } from './source-node.js';

/** Read a Lightning `.ckpt` straight into float32 weights (EMA by default), without writing files. */
export async function loadCheckpoint(path: string, opts: ReadOptions = {}): Promise<CheckpointModel & { weights: WeightMap }> {
  const source = await fileSource(path);
  try {
    return await readCheckpointWeights(await Checkpoint.open(source), opts);
  } finally {
    await source.close();
  }
}

/** A model directory (opened: its shards are read as the weights are iterated) or a `.ckpt` file (read into float32 weights). */
export async function loadModelPath(path: string, opts: ReadOptions & LoadOptions = {}): Promise<{ config: ModelConfig; weights: Weights }> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new PgmError('io', `${path}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`, { cause: e });
  });
  if (info.isDirectory()) return loadModelDir(path, opts);
  checkAborted(opts.signal);
  const model = await loadCheckpoint(path, opts);
  checkAborted(opts.signal);
  return model;
}
