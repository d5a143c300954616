/**
 * Small random-weight model directories for the demo tests (and for trying the demo before
 * the real models exist): one PGM and its MDLM twin on the full GPT-2 vocabulary, plus a
 * weights-manifest.json that lists them.
 *
 *   npx tsx tests/demo/make-test-models.ts <outDir>
 *   npm run demo   then open /demo/?manifest=/<outDir relative to the project>/weights-manifest.json
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ModelConfig, ModelDirConfig } from '../../src/weights/config.js';
import { encodeFloats } from '../../src/weights/floats.js';
import { memorySink, writeSafetensors, type TensorSpec } from '../../src/weights/safetensors.js';
import { randomWeights, tinyConfig } from '../../src/reference/random.js';

export const TEST_MODELS = { pgm: 'pgm-test', mdlm: 'mdlm-test' } as const;

async function writeModelDir(
  dir: string,
  config: ModelConfig,
  seed: number,
): Promise<{ dirConfig: ModelDirConfig; params: number }> {
  const weights = randomWeights(config, seed);
  const specs: TensorSpec[] = [...weights].map(([name, t]) => ({ name, dtype: 'F32', shape: t.shape }));
  const sink = memorySink();
  const { size, sha256 } = await writeSafetensors(sink, specs, async (i) =>
    encodeFloats(weights.get(specs[i].name)!.data, 'F32'),
  );
  const file = 'model.safetensors';
  const dirConfig: ModelDirConfig = {
    format: 'pgm-webgpu',
    formatVersion: 1,
    model: config,
    dtype: 'f32',
    shards: [{ file, size, sha256 }],
    source: { note: `random weights (seed ${seed}) from tests/demo/make-test-models.ts` },
  };
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, file), sink.bytes());
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(dirConfig, null, 2)}\n`);
  return { dirConfig, params: [...weights.values()].reduce((a, t) => a + t.data.length, 0) };
}

/** Write `pgm-test/`, `mdlm-test/` and `weights-manifest.json` (default: the PGM) into `outDir`. */
export async function makeTestModels(
  outDir: string,
): Promise<{ manifest: string; dirs: Record<keyof typeof TEST_MODELS, string> }> {
  const shape = { vocabSize: 50258, hiddenSize: 16, nHeads: 2, length: 64 };
  const models = [
    { id: TEST_MODELS.pgm, twin: TEST_MODELS.mdlm, config: tinyConfig('pgm', shape), seed: 1 },
    { id: TEST_MODELS.mdlm, twin: TEST_MODELS.pgm, config: tinyConfig('mdlm', shape), seed: 2 },
  ];
  const entries = [];
  for (const m of models) {
    const { dirConfig, params } = await writeModelDir(join(outDir, m.id), m.config, m.seed);
    entries.push({
      id: m.id,
      arch: m.config.arch,
      path: `${m.id}/`,
      description: `random-weight ${m.config.arch.toUpperCase()} for tests (D=${shape.hiddenSize}, L=${shape.length})`,
      params,
      shards: dirConfig.shards,
      license: 'MIT',
      twin: m.twin,
    });
  }
  const manifest = join(outDir, 'weights-manifest.json');
  await writeFile(manifest, `${JSON.stringify({ version: 1, default: TEST_MODELS.pgm, models: entries }, null, 2)}\n`);
  return { manifest, dirs: { pgm: join(outDir, TEST_MODELS.pgm), mdlm: join(outDir, TEST_MODELS.mdlm) } };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const out = process.argv[2];
  if (!out) {
    console.error('usage: npx tsx tests/demo/make-test-models.ts <outDir>');
    process.exit(2);
  }
  const { manifest } = await makeTestModels(resolve(out));
  console.log(manifest);
}
