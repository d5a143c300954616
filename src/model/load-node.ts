import { open, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PgmError } from '../errors.js';
import { Checkpoint } from '../convert/checkpoint.js';
import { readCheckpointWeights, type CheckpointModel, type ReadOptions } from '../convert/convert.js';
import { fileSource } from '../convert/source-node.js';
import type { ModelConfig } from './config.js';
import { loadModel, type LoadOptions, type LoadedModel, type ModelFiles } from './load.js';
import type { WeightMap } from './tensor.js';

/** Model files in a directory on disk. */
export function diskFiles(dir: string): ModelFiles {
  return {
    location: dir,
    async read(file, maxBytes) {
      try {
        if (maxBytes === undefined) return new Uint8Array(await readFile(join(dir, file)));
        // At most maxBytes + 1 bytes, however large the file.
        const handle = await open(join(dir, file), 'r');
        try {
          const bytes = new Uint8Array(Math.min((await handle.stat()).size, maxBytes + 1));
          let done = 0;
          while (done < bytes.length) {
            const { bytesRead } = await handle.read(bytes, done, bytes.length - done, done);
            if (bytesRead === 0) break;
            done += bytesRead;
          }
          return bytes.subarray(0, done);
        } finally {
          await handle.close();
        }
      } catch (e) {
        throw new PgmError('io', `${join(dir, file)}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
      }
    },
  };
}

/** Load and verify a converted model directory. */
export function loadModelDir(dir: string, opts: LoadOptions = {}): Promise<LoadedModel> {
  return loadModel(diskFiles(dir), opts);
}

/** Read a Lightning `.ckpt` straight into float32 weights (EMA by default), without writing files. */
export async function loadCheckpoint(path: string, opts: ReadOptions = {}): Promise<CheckpointModel & { weights: WeightMap }> {
  const source = await fileSource(path);
  try {
    return await readCheckpointWeights(await Checkpoint.open(source), opts);
  } finally {
    await source.close();
  }
}

/** A model directory or a `.ckpt` file -> config and float32 weights. */
export async function loadModelPath(path: string, opts: ReadOptions & LoadOptions = {}): Promise<{ config: ModelConfig; weights: WeightMap }> {
  const info = await stat(path).catch((e: NodeJS.ErrnoException) => {
    throw new PgmError('io', `${path}: ${e.code === 'ENOENT' ? 'no such file or directory' : e.message}`, { cause: e });
  });
  return info.isDirectory() ? loadModelDir(path, opts) : loadCheckpoint(path, opts);
}
