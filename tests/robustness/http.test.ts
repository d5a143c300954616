/**
 * Loading from a hostile or broken server: a real HTTP server on 127.0.0.1, started and stopped
 * here, that declares huge shards, sends forever, trickles, never answers, cuts bodies short,
 * resets, redirects in a loop or to file:, or serves a gzip bomb. Every case ends in a typed
 * PgmError within a few seconds, and (measured in a subprocess) with memory flat.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Checkpoint } from '../../src/convert/checkpoint.js';
import { convertCheckpoint } from '../../src/convert/convert.js';
import { bytesSource } from '../../src/convert/source.js';
import type { ModelDirConfig } from '../../src/weights/config.js';
import {
  fetchManifest,
  loadModelFromManifest,
  loadModelFromUrl as openModelFromUrl,
  type LoadOptions,
  type LoadProgress,
} from '../../src/weights/load.js';
import { createEngine } from '../../src/node.js';
import { memoryDir } from '../../scripts/fuzz.js';
import { pgmError, readAll } from '../convert/helpers.js';

const ROOT = join(import.meta.dirname, '..', '..');
/** A model directory over HTTP, opened and its weights read (its shards are fetched as they are read). */
const loadModelFromUrl = (url: string, opts?: LoadOptions) => readAll(openModelFromUrl(url, opts));
const CKPT = join(import.meta.dirname, '..', 'convert', 'data', 'mdlm-edge.ckpt');

type Route = (req: IncomingMessage, res: ServerResponse) => void;
let routes = new Map<string, Route>();
let server: Server;
let base: string;
let config: ModelDirConfig;
let configText: string;
let shard: Uint8Array;
/** Requests per path since the last reset. */
const requests = new Map<string, number>();

const send =
  (body: Uint8Array | string, headers: Record<string, string> = {}): Route =>
  (_req, res) => {
    res.writeHead(200, { 'content-length': String(Buffer.byteLength(body)), ...headers });
    res.end(body);
  };

/** Writes `chunk` until the client goes away (or `limit` bytes), without a Content-Length. */
const forever =
  (chunk: Uint8Array, headers: Record<string, string> = {}): Route =>
  (_req, res) => {
    res.writeHead(200, headers);
    const more = () => {
      while (!res.destroyed) if (!res.write(chunk)) return void res.once('drain', more);
    };
    res.on('close', () => res.destroy());
    more();
  };

/** `bytes` one byte every `ms` (with their Content-Length). */
const trickle =
  (bytes: Uint8Array, ms: number): Route =>
  (_req, res) => {
    res.writeHead(200, { 'content-length': String(bytes.length) });
    res.flushHeaders();
    let at = 0;
    const timer = setInterval(
      () => (at < bytes.length && !res.destroyed ? res.write(bytes.subarray(at, ++at)) : clearInterval(timer)),
      ms,
    );
    res.on('close', () => clearInterval(timer));
  };

/** A model directory at `/<dir>/`: config.json as given, the shard by `shardRoute`. */
function model(dir: string, shardRoute: Route = send(shard), text = configText): void {
  routes.set(`/${dir}/config.json`, send(text, { 'content-type': 'application/json' }));
  routes.set(`/${dir}/model.safetensors`, shardRoute);
}

/** The packaged pgm-small, whose vocabulary lets an engine be created (the converter's test model has none): its shards are read after the device is. */
const PGM_SMALL = join(ROOT, 'models', 'pgm-small');
const tokenized = (dir: string, shardRoute: (bytes: Uint8Array) => Route): void =>
  model(
    dir,
    shardRoute(readFileSync(join(PGM_SMALL, 'model.safetensors'))),
    readFileSync(join(PGM_SMALL, 'config.json'), 'utf8'),
  );

const declaring = (size: number): string => JSON.stringify({ ...config, shards: [{ ...config.shards[0], size }] });

beforeAll(async () => {
  const out = memoryDir();
  config = (await convertCheckpoint(await Checkpoint.open(bytesSource(readFileSync(CKPT), 'mdlm-edge.ckpt')), out))
    .dirConfig;
  configText = new TextDecoder().decode(out.files.get('config.json'));
  shard = out.files.get('model.safetensors')!;
  server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.set(path, (requests.get(path) ?? 0) + 1);
    const route = routes.get(path);
    if (route) route(req, res);
    else res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});
beforeEach(() => {
  routes = new Map();
  requests.clear();
  model('good');
});

/** How long `f` took to fail, and its PgmError. */
async function timed(f: () => Promise<unknown>) {
  const start = performance.now();
  const e = await pgmError(f);
  return { e, ms: performance.now() - start };
}

/** A load in a child process (tests/robustness/load-child.ts): how it ended and how much its resident set grew. */
function child(
  kind: 'manifest' | 'model',
  url: string,
): Promise<{ code: string; message: string; grew: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const start = performance.now();
    const p = spawn(process.execPath, ['--import', 'tsx', join(import.meta.dirname, 'load-child.ts'), kind, url], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    const kill = setTimeout(() => p.kill('SIGKILL'), 60_000);
    p.on('close', (code) => {
      clearTimeout(kill);
      if (code !== 0) return reject(new Error(`load-child exited ${code}: ${stderr}`));
      const r = JSON.parse(stdout) as { code: string; message: string; before: number; peak: number };
      resolve({ code: r.code, message: r.message, grew: r.peak - r.before, ms: performance.now() - start });
    });
  });
}

const MiB = 2 ** 20;

describe('sizes are bounded before and while bytes arrive', () => {
  it('a config.json declaring a 100 GB shard, or more than its model holds, is refused before any shard is requested', async () => {
    model('huge', send(shard), declaring(100e9));
    const huge = await timed(() => loadModelFromUrl(`${base}/huge/`));
    expect([huge.e.code, huge.e.message]).toEqual([
      'config',
      `${base}/huge/config.json: shard model.safetensors declares 100000000000 bytes, over the 2147483648 a shard may have; re-shard the model (pgm reshard <dir> --shard-size 64M)`,
    ]);
    model('big', send(shard), declaring(2 ** 30));
    const big = await pgmError(() => loadModelFromUrl(`${base}/big/`));
    expect([big.code, big.message]).toEqual([
      'config',
      expect.stringMatching(
        /big\/config\.json: the shards declare 1073741824 bytes, but the model it describes has \d+ parameters \(\d+ to \d+ bytes, plus headers\); config\.json does not describe these shards$/,
      ),
    ]);
    expect([requests.get('/huge/model.safetensors'), requests.get('/big/model.safetensors')]).toEqual([
      undefined,
      undefined,
    ]);
    expect(huge.ms).toBeLessThan(2000);
  });

  it('a shard sent forever without a Content-Length stops one byte past its declared size', async () => {
    let sent = 0;
    model('endless', (_req, res) => {
      res.writeHead(200);
      res.write(shard);
      const chunk = new Uint8Array(64 * 1024);
      const more = () => {
        while (!res.destroyed && sent < 256 * MiB) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
      };
      res.on('close', () => res.destroy());
      more();
    });
    const e = await pgmError(() => loadModelFromUrl(`${base}/endless/`));
    expect([e.code, e.message]).toEqual([
      'integrity',
      `shard model.safetensors: larger than its declared ${shard.length} bytes (reading stopped there); the server's copy is damaged or belongs to another version of the model; try again, or fix the files on the server`,
    ]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(sent).toBeLessThan(32 * MiB); // what socket buffers took before the reader hung up
  });

  it('in a subprocess: a 100 GB shard sent forever, an endless manifest and a gzip manifest inflating to 200 MB end in a PgmError at once, memory flat', async () => {
    model('forever', forever(new Uint8Array(MiB)), declaring(100e9));
    routes.set(
      '/endless.json',
      forever(new TextEncoder().encode(' '.repeat(MiB)), { 'content-type': 'application/json' }),
    );
    routes.set(
      '/bomb.json',
      send(gzipSync(new Uint8Array(200e6)), { 'content-type': 'application/json', 'content-encoding': 'gzip' }),
    );
    const forever100 = await child('model', `${base}/forever/`);
    expect([forever100.code, forever100.message]).toEqual([
      'config',
      expect.stringContaining(
        'shard model.safetensors declares 100000000000 bytes, over the 2147483648 a shard may have',
      ),
    ]);
    const endless = await child('manifest', `${base}/endless.json`);
    expect([endless.code, endless.message]).toEqual([
      'config',
      `${base}/endless.json: larger than 16777216 bytes, not a weights manifest; check the manifest URL`,
    ]);
    const bomb = await child('manifest', `${base}/bomb.json`);
    expect([bomb.code, bomb.message]).toEqual([
      'config',
      `${base}/bomb.json: larger than 16777216 bytes, not a weights manifest; check the manifest URL`,
    ]);
    for (const r of [forever100, endless, bomb]) {
      console.log(
        `${r.message.slice(0, 60)}...: ${(r.ms / 1000).toFixed(1)} s, resident set grew ${(r.grew / MiB).toFixed(1)} MiB`,
      );
      // Reading up to the 16 MiB cap, garbage included (fetch alone, storing nothing, grew 54 MiB
      // here): bounded by the cap, not by what the server sends (before: 4 GB and an OOM kill).
      expect(r.grew).toBeLessThan(128 * MiB);
      expect(r.ms).toBeLessThan(20_000);
    }
  });

  it('a config.json of NUL bytes is invalid JSON in a message without control characters', async () => {
    model('nul', send(shard), '\0'.repeat(4096));
    const e = await pgmError(() => loadModelFromUrl(`${base}/nul/`));
    expect(e.code).toBe('config');
    expect(e.message).toMatch(/config\.json: not valid JSON \(.*\\u0000/);
    expect(e.message).not.toMatch(/[\u0000-\u001f]/);
    expect(e.message.length).toBeLessThan(400);
  });
});

describe('time is bounded, and a load can be cancelled', () => {
  it('a server that trickles a byte a second, or never sends headers, times out after stallTimeout', async () => {
    model('trickle', trickle(shard, 1000));
    const slow = await timed(() => loadModelFromUrl(`${base}/trickle/`, { stallTimeout: 1000 }));
    expect([slow.e.code, slow.e.message]).toEqual([
      'io',
      expect.stringMatching(
        new RegExp(
          `^${base}/trickle/model\\.safetensors: timed out: less than 16 KiB arrived in 1 s \\(reading the body, \\d of ${shard.length} bytes so far\\); the server stalled or is too slow \\(stallTimeout\\)$`,
        ),
      ),
    ]);
    expect(slow.ms).toBeLessThan(4000);
    routes.set('/silent/config.json', () => undefined); // never answers
    const silent = await timed(() => loadModelFromUrl(`${base}/silent/`, { stallTimeout: 1000 }));
    expect([silent.e.code, silent.e.message]).toEqual([
      'io',
      `${base}/silent/config.json: timed out: less than 16 KiB arrived in 1 s (waiting for the headers, 0 bytes so far); the server stalled or is too slow (stallTimeout)`,
    ]);
    expect(silent.ms).toBeLessThan(4000);
  });

  it("an abort stops a download at once, the Node entry's createEngine included", async () => {
    model('trickle', trickle(shard, 100));
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 300);
    const aborted = await timed(() => loadModelFromUrl(`${base}/trickle/`, { signal: controller.signal }));
    expect([aborted.e.code, aborted.e.message]).toEqual(['aborted', 'loading was aborted']);
    expect(aborted.ms).toBeLessThan(1500);
    tokenized('trickle-small', (bytes) => trickle(bytes, 100));
    const engine = await timed(() =>
      createEngine({ model: `${base}/trickle-small/`, signal: AbortSignal.timeout(300) }),
    );
    expect([engine.e.code, engine.e.message]).toEqual([
      'aborted',
      'loading was aborted (The operation was aborted due to timeout)',
    ]);
    expect(engine.ms).toBeLessThan(1500);
    const already = await pgmError(() => createEngine({ model: `${base}/good/`, signal: AbortSignal.abort() }));
    expect(already.code).toBe('aborted');
  });

  it("Ctrl-C during `pgm generate`'s download stops it: exit 130, nothing on stderr", async () => {
    tokenized('ctrl-c', (bytes) => trickle(bytes, 100)); // a path of its own: no late request of another test counts
    const p = spawn(
      process.execPath,
      ['--import', 'tsx', join(ROOT, 'src', 'cli', 'main.ts'), 'generate', '--model', `${base}/ctrl-c/`],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    // Once the shard is being downloaded.
    while ((requests.get('/ctrl-c/model.safetensors') ?? 0) === 0)
      await new Promise((resolve) => setTimeout(resolve, 50));
    const start = performance.now();
    p.kill('SIGINT');
    const code = await new Promise((resolve) => p.on('close', (c, signal) => resolve(c ?? signal)));
    expect({ code, stderr }).toEqual({ code: 130, stderr: '' });
    expect(performance.now() - start).toBeLessThan(3000);
  });
});

describe('every failure while reading is an io error naming the file and the cause', () => {
  it('a body shorter than its Content-Length, a reset mid-shard, a refused connection', async () => {
    model('short', (_req, res) => {
      res.writeHead(200, { 'content-length': String(shard.length) });
      res.write(shard.subarray(0, 10));
      setTimeout(() => res.socket?.end(), 50);
    });
    const short = await pgmError(() => loadModelFromUrl(`${base}/short/`));
    expect([short.code, short.message]).toEqual([
      'io',
      `${base}/short/model.safetensors: the download broke off after 10 of ${shard.length} bytes (connection reset by the server (other side closed)); try again`,
    ]);
    model('reset', (_req, res) => {
      res.writeHead(200, { 'content-length': String(shard.length) });
      res.write(shard.subarray(0, 100));
      setTimeout(() => res.socket?.destroy(), 50);
    });
    const reset = await pgmError(() => loadModelFromUrl(`${base}/reset/`));
    expect([reset.code, reset.message]).toEqual([
      'io',
      expect.stringMatching(
        new RegExp(
          `^${base}/reset/model\\.safetensors: the download broke off after 100 of ${shard.length} bytes \\(connection reset by the server`,
        ),
      ),
    ]);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const refused = await pgmError(() => loadModelFromUrl(`http://127.0.0.1:${port}/m/`));
    expect([refused.code, refused.message]).toEqual([
      'io',
      `http://127.0.0.1:${port}/m/config.json: fetch failed (connection refused); check the model URL (a directory with config.json and its shards)`,
    ]);
  });

  it('a redirect loop, a redirect to file:, an HTML page (any case of its type)', async () => {
    routes.set('/loop/config.json', (_req, res) => res.writeHead(302, { location: '/loop/config.json' }).end());
    routes.set('/file/config.json', (_req, res) => res.writeHead(302, { location: 'file:///etc/passwd' }).end());
    routes.set(
      '/page/config.json',
      send('<!DOCTYPE html><title>app</title>', { 'content-type': 'TEXT/HTML; charset=UTF-8' }),
    );
    const loop = await pgmError(() => loadModelFromUrl(`${base}/loop/`));
    expect([loop.code, loop.message]).toEqual([
      'io',
      `${base}/loop/config.json: fetch failed (redirect loop: more than 20 redirects); check the model URL (a directory with config.json and its shards)`,
    ]);
    const file = await pgmError(() => loadModelFromUrl(`${base}/file/`));
    expect([file.code, file.message]).toEqual([
      'io',
      `${base}/file/config.json: fetch failed (redirected to a URL that is not http(s), which is never followed); check the model URL (a directory with config.json and its shards)`,
    ]);
    const page = await pgmError(() => loadModelFromUrl(`${base}/page/`));
    expect([page.code, page.message]).toEqual([
      'io',
      `${base}/page/config.json: the server answered with an HTML page, not the model file; check the model URL (a directory with config.json and its shards)`,
    ]);
  });

  it('a manifest at a data: URL whose model path is relative names the problem', async () => {
    const manifest = {
      version: 1,
      default: 'm',
      models: [
        { id: 'm', arch: 'mdlm', path: 'good', description: 'x', params: 1, shards: config.shards, license: 'MIT' },
      ],
    };
    const url = `data:application/json,${encodeURIComponent(JSON.stringify(manifest))}`;
    expect((await fetchManifest(url)).models[0].id).toBe('m');
    const e = await pgmError(() => loadModelFromManifest(url));
    expect([e.code, e.message]).toEqual([
      'config',
      expect.stringMatching(
        /^data:application\/json,.*: model m has the path "good", which names no URL relative to a data: manifest; give an absolute http\(s\) URL$/,
      ),
    ]);
    const absolute = { ...manifest, models: [{ ...manifest.models[0], path: `${base}/good/` }] };
    expect(
      (await loadModelFromManifest(`data:application/json,${encodeURIComponent(JSON.stringify(absolute))}`)).config
        .arch,
    ).toBe('mdlm');
  });
});

describe('progress', () => {
  it('bytes as they arrive, also with a single shard, then its check; loadedBytes of totalBytes for the bar', async () => {
    model('chunked', (_req, res) => {
      res.writeHead(200, { 'content-length': String(shard.length) });
      const quarter = Math.ceil(shard.length / 4);
      let at = 0;
      const next = () => {
        res.write(shard.subarray(at, at + quarter));
        at += quarter;
        if (at < shard.length) setTimeout(next, 30);
        else res.end();
      };
      next();
    });
    const events: LoadProgress[] = [];
    await loadModelFromUrl(`${base}/chunked/`, { onProgress: (p) => events.push(p) });
    expect(config.shards).toHaveLength(1);
    const bytes = events.filter((p) => p.phase === 'download' && p.file === 'model.safetensors');
    expect(bytes.length).toBeGreaterThanOrEqual(4);
    expect(bytes.map((p) => p.total)).toEqual(bytes.map(() => shard.length));
    expect(bytes.map((p) => p.loaded)).toEqual([...bytes.map((p) => p.loaded)].sort((a, b) => a - b));
    expect(bytes.map((p) => p.loadedBytes)).toEqual(bytes.map((p) => p.loaded));
    expect(bytes[0].loaded).toBeLessThan(shard.length);
    expect(bytes.at(-1)).toMatchObject({
      loaded: shard.length,
      loadedBytes: shard.length,
      totalBytes: shard.length,
      ms: expect.any(Number),
    });
    expect(events[0]).toMatchObject({ phase: 'download', file: 'config.json', totalBytes: 0 });
    expect(events.at(-1)).toMatchObject({
      phase: 'verify',
      file: 'model.safetensors',
      loaded: shard.length,
      total: shard.length,
      ms: expect.any(Number),
    });
  });
});
