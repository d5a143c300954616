import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Checkpoint } from '../../src/convert/checkpoint.js';
import { convertCheckpoint } from '../../src/convert/convert.js';
import { dirSink } from '../../src/convert/sink-node.js';
import { fileSource } from '../../src/convert/source-node.js';
import type { ModelDirConfig } from '../../src/weights/config.js';
import { loadModelFromManifest, loadModelFromUrl, loadPackagedModel } from '../../src/weights/load.js';
import { readWeights } from '../../src/weights/host-tensor.js';
import { PACKAGED_MANIFEST } from '../../src/weights/packaged.js';
import { loadModelPath } from '../../src/convert/read-node.js';
import { loadModelDir } from '../../src/weights/load-node.js';
import { findModel, validateManifest, type ManifestModel, type WeightsManifest } from '../../src/weights/manifest.js';
import { pgmError, readAll } from './helpers.js';

const CKPT = join(import.meta.dirname, 'data', 'mdlm-edge.ckpt');
let root: string;
let modelDir: string;
let dirConfig: ModelDirConfig;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'pgm-load-'));
  modelDir = join(root, 'mdlm-edge');
  const source = await fileSource(CKPT);
  dirConfig = (await convertCheckpoint(await Checkpoint.open(source), await dirSink(modelDir))).dirConfig;
  await source.close();
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** A copy of the model dir that `edit` may damage. */
async function copy(edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = await mkdtemp(join(root, 'copy-'));
  await cp(modelDir, dir, { recursive: true });
  await edit(dir);
  return dir;
}

/** fetch() over files on disk, under http://models.test/. */
const diskFetch = (async (input: string | URL | Request) => {
  const url = new URL(String(input));
  try {
    return new Response(await readFile(join(root, decodeURIComponent(url.pathname))));
  } catch {
    return new Response('not found', { status: 404, statusText: 'Not Found' });
  }
}) as typeof fetch;

const entry = (over: Partial<ManifestModel> = {}): ManifestModel => ({
  id: 'mdlm-edge',
  arch: 'mdlm',
  path: 'mdlm-edge',
  description: 'test',
  params: 2928,
  shards: dirConfig.shards,
  license: 'MIT',
  ...over,
});

describe('model directory loading', () => {
  it('loads from disk and from a directory-or-ckpt path, with identical weights', async () => {
    const fromDir = await loadModelDir(modelDir);
    expect(fromDir.config).toEqual(dirConfig.model);
    const [dirWeights, ckptWeights, pathWeights] = [
      await readWeights(fromDir.weights),
      await readAll(loadModelPath(CKPT)),
      await readAll(loadModelPath(modelDir)),
    ];
    expect([...pathWeights.keys()]).toEqual([...ckptWeights.keys()]);
    for (const [k, t] of ckptWeights) expect(dirWeights.get(k)).toEqual(t);
    // Each iteration reads the shards again.
    expect(await readWeights(fromDir.weights)).toEqual(dirWeights);
  });

  it('a .ckpt path is opened (its config read), its tensors read from the file as they are iterated', async () => {
    const path = join(root, 'opened.ckpt');
    await cp(CKPT, path);
    const opened = await loadModelPath(path);
    expect(opened.config).toEqual(dirConfig.model);
    await rm(path);
    expect(await pgmError(() => readWeights(opened.weights))).toMatchObject({
      code: 'io',
      message: expect.stringContaining('opened.ckpt'),
    });
  });

  it('loads over fetch (the browser path), directly and through a manifest; nothing but config.json is read until the weights are', async () => {
    const progress: number[] = [];
    const fetched: string[] = [];
    const counting = ((input: string | URL | Request) => (
      fetched.push(String(input).split('/').pop()!),
      diskFetch(input)
    )) as typeof fetch;
    const opened = await loadModelFromUrl(
      'http://models.test/mdlm-edge',
      { onProgress: (p) => p.phase === 'verify' && progress.push(p.loadedBytes) },
      counting,
    );
    expect([fetched, progress]).toEqual([['config.json'], []]);
    const a = await readWeights(opened.weights);
    expect(a.size).toBe(30);
    expect(progress).toEqual([dirConfig.shards[0].size]);
    const manifest: WeightsManifest = { version: 1, default: 'mdlm-edge', models: [entry()] };
    await writeFile(join(root, 'weights-manifest.json'), JSON.stringify(manifest));
    const b = await readAll(
      loadModelFromManifest('http://models.test/weights-manifest.json', undefined, {}, diskFetch),
    );
    expect(b.get('blocks.0.attn_qkv.weight')).toEqual(a.get('blocks.0.attn_qkv.weight'));
    expect((await pgmError(() => loadModelFromUrl('http://models.test/nothing', {}, diskFetch))).message).toMatch(
      /^http:\/\/models\.test\/nothing\/config\.json: HTTP 404 Not Found; check the model URL/,
    );
  });

  it("a dev server's HTML fallback page for a missing file is named as such, not as invalid JSON", async () => {
    const spa = (async () =>
      new Response('<!doctype html><title>app</title>', {
        headers: { 'content-type': 'text/html; charset=utf-8' },
      })) as typeof fetch;
    const e = await pgmError(() => loadModelFromUrl('http://models.test/mdlm-edge', {}, spa));
    expect(e.code).toBe('io');
    expect(e.message).toMatch(/config\.json: the server answered with an HTML page, not the model file/);
  });

  it('loads the packaged default model from its literal asset URLs, and says how to host it when they are unreachable', async () => {
    // In Node the packaged URLs are file: URLs into the repository's models/.
    const fileFetch = (async (input: string | URL | Request) =>
      new Response(await readFile(new URL(String(input))))) as typeof fetch;
    const fetched: string[] = [];
    const model = await loadPackagedModel(
      undefined,
      {},
      ((input: string | URL | Request) => (fetched.push(String(input)), fileFetch(input))) as typeof fetch,
    );
    expect(model.config.arch).toBe(PACKAGED_MANIFEST.models.find((m) => m.id === PACKAGED_MANIFEST.default)!.arch);
    await readWeights(model.weights);
    expect(fetched.map((u) => u.split('/models/')[1])).toEqual([
      `${PACKAGED_MANIFEST.default}/config.json`,
      `${PACKAGED_MANIFEST.default}/model.safetensors`,
    ]);
    expect((await loadPackagedModel('mdlm-small', {}, fileFetch)).config.arch).toBe('mdlm');
    const e = await pgmError(() => loadPackagedModel(undefined, {}, diskFetch));
    expect(e.code).toBe('io');
    // In Node the browser loader's hint is the Node entry (a page's hint, naming the bundlers' fixes: tests/consumers/).
    expect(e.message).toContain("in Node.js, import { createEngine } from 'pgm-webgpu/node'");
    expect((await pgmError(() => loadPackagedModel('no-such-model', {}, fileFetch))).message).toMatch(
      /no model "no-such-model" \(available: pgm-small, mdlm-small\)/,
    );
  });

  it('detects a modified shard (sha256) and a truncated one (size)', async () => {
    const flipped = await copy(async (dir) => {
      const p = join(dir, 'model.safetensors');
      const b = await readFile(p);
      b[b.length - 3] ^= 0x40;
      await writeFile(p, b);
    });
    const e = await pgmError(() => readAll(loadModelDir(flipped)));
    expect(e.code).toBe('integrity');
    const want = dirConfig.shards[0].sha256.slice(0, 12);
    expect(e.message).toMatch(
      new RegExp(
        `^shard model\\.safetensors: sha256 mismatch \\(expected ${want}…, got [0-9a-f]{12}…\\); the directory holds a damaged or partly written model; convert it again$`,
      ),
    );
    const cut = await copy(async (dir) =>
      writeFile(join(dir, 'model.safetensors'), (await readFile(join(dir, 'model.safetensors'))).subarray(0, 100)),
    );
    expect((await pgmError(() => readAll(loadModelDir(cut)))).message).toBe(
      `shard model.safetensors: size mismatch (expected ${dirConfig.shards[0].size} bytes, got 100); the directory holds a damaged or partly written model; convert it again`,
    );
  });

  it('a shard larger than declared is not read whole, over HTTP or from disk', async () => {
    // A real HTTP server: config.json as converted, the shard followed by 64 MiB more.
    const config = await readFile(join(modelDir, 'config.json'));
    const shard = await readFile(join(modelDir, 'model.safetensors'));
    const extra = 64 * 2 ** 20;
    let sent = 0;
    const server = createServer((req, res) => {
      if (req.url?.endsWith('/config.json')) return res.end(config);
      res.writeHead(200, { 'content-length': String(shard.length + extra) });
      res.write(shard);
      const chunk = Buffer.alloc(2 ** 16);
      const more = () => {
        while (sent < extra) {
          sent += chunk.length;
          if (!res.write(chunk)) return res.once('drain', more);
        }
        res.end();
      };
      more();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const e = await pgmError(() => readAll(loadModelFromUrl(`http://127.0.0.1:${port}/m/`)));
      expect([e.code, e.message]).toEqual([
        'integrity',
        `shard model.safetensors: larger than its declared ${shard.length} bytes (the server announces ${shard.length + extra}); the server's copy is damaged or belongs to another version of the model; try again, or fix the files on the server`,
      ]);
      // What the server could push into the socket buffers before the reader hung up, not 64 MiB.
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(sent).toBeLessThan(extra / 4);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    const longer = await copy(async (dir) =>
      writeFile(join(dir, 'model.safetensors'), Buffer.concat([shard, Buffer.alloc(2 ** 20)])),
    );
    expect((await pgmError(() => readAll(loadModelDir(longer)))).message).toBe(
      `shard model.safetensors: larger than its declared ${shard.length} bytes (reading stopped there); the directory holds a damaged or partly written model; convert it again`,
    );
    const hugeConfig = await copy(async (dir) => writeFile(join(dir, 'config.json'), Buffer.alloc(17 * 2 ** 20, 32)));
    expect(await pgmError(() => loadModelDir(hugeConfig))).toMatchObject({
      code: 'config',
      message: expect.stringMatching(/config\.json: larger than 16777216 bytes, not a model config/),
    });
  });

  it('checks the shards against the manifest entry', async () => {
    const other = { ...dirConfig.shards[0], sha256: 'f'.repeat(64) };
    const e = await pgmError(() => loadModelDir(modelDir, { manifestEntry: entry({ shards: [other] }) }));
    expect([e.code, e.message]).toEqual([
      'integrity',
      'shard model.safetensors: config.json and the manifest entry mdlm-edge disagree on it; the directory holds a damaged or partly written model; convert it again',
    ]);
  });

  it('validates config.json and that the tensors match it', async () => {
    const bad = await copy(async (dir) =>
      writeFile(join(dir, 'config.json'), '{"format": "pgm-webgpu", "formatVersion": 1, "model": {"arch": "gpt"}}'),
    );
    expect((await pgmError(() => loadModelDir(bad))).message).toMatch(/config\.json: unknown architecture "gpt"/);
    const notJson = await copy(async (dir) => writeFile(join(dir, 'config.json'), '{'));
    expect((await pgmError(() => loadModelDir(notJson))).message).toMatch(/config\.json: not valid JSON/);
    const wrongShape = await copy(async (dir) => {
      const c = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as ModelDirConfig;
      c.model.nBlocks = 3;
      await writeFile(join(dir, 'config.json'), JSON.stringify(c));
    });
    expect((await pgmError(() => readAll(loadModelDir(wrongShape)))).message).toMatch(
      /the shards do not match the model config: missing blocks\.2\.norm1\.weight/,
    );
  });
});

describe('weights-manifest.json', () => {
  it('the repository manifest is valid', () => {
    const m = validateManifest(
      JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'weights-manifest.json'), 'utf8')),
    );
    expect(m.version).toBe(1);
  });
  it('rejects malformed manifests with one-line messages', async () => {
    const good = { version: 1, default: 'a', models: [entry({ id: 'a' })] };
    expect(findModel(validateManifest(good)).id).toBe('a');
    const cases: [unknown, RegExp][] = [
      [{ ...good, version: 2 }, /unsupported version 2/],
      [{ ...good, default: 'b' }, /"default" must be null or the id of a listed model/],
      [{ ...good, models: [entry({ id: 'a' }), entry({ id: 'a' })] }, /model id a is listed twice/],
      [{ ...good, models: [entry({ id: 'a', arch: 'gpt' as never })] }, /models\[0\]\.arch must be "pgm" or "mdlm"/],
      [
        {
          ...good,
          models: [entry({ id: 'a', shards: [{ file: '../x.safetensors', size: 9, sha256: 'a'.repeat(64) }] })],
        },
        /plain \*\.safetensors file name/,
      ],
      [
        { ...good, models: [entry({ id: 'a', shards: [{ file: 'x.safetensors', size: 9, sha256: 'xyz' }] })] },
        /sha256 must be 64 lowercase hex digits/,
      ],
    ];
    for (const [m, re] of cases) {
      const e = await pgmError(() => validateManifest(m));
      expect([e.code, e.message]).toEqual(['config', expect.stringMatching(re)]);
    }
    expect((await pgmError(() => findModel(validateManifest({ ...good, default: null })))).message).toMatch(
      /no default model/,
    );
  });
});
