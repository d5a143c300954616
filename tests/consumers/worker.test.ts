/**
 * The worker engine as a stranger uses it: the packed package in fresh Vite and webpack 5
 * projects (no configuration) whose page hands a module worker to createWorkerEngine, either the
 * package's own (`new Worker(new URL('pgm-webgpu/worker', import.meta.url), { type: 'module' })`)
 * or a worker file of one line (`import 'pgm-webgpu/worker';`). The built sites are served by a
 * server that can throttle the model files or cut them off, and run in headless Chromium
 * (SwiftShader): the text of the CLI for the same seed, a reload with the network cut (the model
 * from the Cache API), and byte progress during a throttled download.
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser, type BrowserContext } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LoadProgress } from '../../src/index.js';
import { BASE_ARGS, CHROMIUM, WEBGPU_ARGS } from '../demo/browser.js';
import { serveStatic, type Network } from '../demo/server.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const work = mkdtempSync(join(tmpdir(), 'pgm-worker-consumer-'));
const app = join(work, 'vite');
let browser: Browser;
/** The Vite site, through `network`; the webpack site. */
let server: { url: string; close(): Promise<void> };
let webpackServer: { url: string; close(): Promise<void> };
/** What the server does to each request, and the paths it was asked for. */
let network: Network = () => undefined;
const requested: string[] = [];
let expectedText: Promise<string>;

const SETTINGS = { prompt: 'It was', length: 24, steps: 4, seed: 3 };

/** The page: ?own-worker picks the one-line worker file, ?model= a model; #out gets the text, the step numbers and the progress events. */
const MAIN = `import { createWorkerEngine } from 'pgm-webgpu';
const params = new URLSearchParams(location.search);
const worker = params.has('own-worker')
  ? new Worker(new URL('./worker.js', import.meta.url), { type: 'module' })
  : new Worker(new URL('pgm-webgpu/worker', import.meta.url), { type: 'module' });
const progress = [];
const steps = [];
try {
  const engine = await createWorkerEngine(worker, { ...(params.has('model') && { model: params.get('model') }), onProgress: (p) => progress.push(p) });
  const run = engine.generate(${JSON.stringify(SETTINGS)});
  for await (const step of run) steps.push(step.step);
  const { text } = await run;
  engine.dispose();
  document.querySelector('#out').textContent = JSON.stringify({ text, steps, progress });
} catch (e) {
  document.querySelector('#error').textContent = e.code + ': ' + e.message;
}
`;

interface PageResult {
  text: string;
  steps: number[];
  progress: LoadProgress[];
}

/** Open the built page with `query` in `context` and return what it wrote (or fail with its error). */
async function visit(context: BrowserContext, query = '', site = server.url): Promise<PageResult> {
  const tab = await context.newPage();
  const logs: string[] = [];
  tab.on('console', (m) => logs.push(m.text()));
  tab.on('pageerror', (e) => logs.push(e.message));
  await tab.goto(`${site}/index.html${query}`);
  await tab.waitForFunction(
    () => document.querySelector('#out')?.textContent || document.querySelector('#error')?.textContent,
    null,
    { timeout: 120_000 },
  );
  const error = await tab.textContent('#error');
  if (error) throw new Error(`${query}: ${error}\n${logs.join('\n')}`);
  const result = JSON.parse((await tab.textContent('#out'))!) as PageResult;
  await tab.close();
  return result;
}

beforeAll(async () => {
  const cli = [
    'tsx',
    'src/cli/main.ts',
    'generate',
    '--prompt',
    SETTINGS.prompt,
    '--length',
    String(SETTINGS.length),
    '--steps',
    String(SETTINGS.steps),
    '--seed',
    String(SETTINGS.seed),
  ];
  expectedText = run('npx', cli, { cwd: ROOT }).then(({ stdout }) => stdout.replace(/\n$/, ''));
  // PGM_CONSUMER_TARBALL: a package packed already (as for tests/consumers/consumers.test.ts).
  if (!process.env.PGM_CONSUMER_TARBALL)
    await run('npm', ['pack', '--pack-destination', work, '--loglevel=error'], { cwd: ROOT });
  const tarball =
    process.env.PGM_CONSUMER_TARBALL ??
    join(
      work,
      readdirSync(work).find((f) => f.endsWith('.tgz'))!,
    );
  /** A project with the page: `src` holds main.js and worker.js, `html` index.html. */
  const project = async (dir: string, src: string, html: string) => {
    mkdirSync(join(dir, src), { recursive: true });
    mkdirSync(join(dir, html), { recursive: true });
    writeFileSync(
      join(dir, 'package.json'),
      JSON.stringify({ name: 'consumer-worker', private: true, type: 'module' }),
    );
    writeFileSync(
      join(dir, html, 'index.html'),
      '<!doctype html><meta charset="utf-8"><pre id="out"></pre><pre id="error"></pre><script type="module" src="./main.js"></script>\n',
    );
    writeFileSync(join(dir, src, src === '.' ? 'main.js' : 'index.js'), MAIN);
    writeFileSync(join(dir, src, 'worker.js'), "import 'pgm-webgpu/worker';\n");
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball], {
      cwd: dir,
    });
  };
  await project(app, '.', '.');
  await run(process.execPath, [join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], {
    cwd: app,
  });
  // webpack 5's zero configuration: src/index.js -> dist/main.js.
  const webpack = join(work, 'webpack');
  await project(webpack, 'src', 'dist');
  await run(
    process.execPath,
    [join(ROOT, 'node_modules', 'webpack-cli', 'bin', 'cli.js'), '--mode', 'production', '--no-stats'],
    { cwd: webpack },
  );
  webpackServer = await serveStatic({ '/': join(webpack, 'dist') });
  // Hosting a model beside the page: ?model=./weights/pgm-small/ (relative to the page, not to the worker's script).
  cpSync(join(app, 'node_modules', 'pgm-webgpu', 'models', 'pgm-small'), join(app, 'dist', 'weights', 'pgm-small'), {
    recursive: true,
  });
  server = await serveStatic({ '/': join(app, 'dist') }, (path) => (requested.push(path), network(path)));
  browser = await chromium.launch({ executablePath: CHROMIUM, args: [...BASE_ARGS, ...WEBGPU_ARGS] });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await webpackServer?.close();
  rmSync(work, { recursive: true, force: true });
});

const isModelFile = (path: string) => path.endsWith('.safetensors') || /\/config[-\w]*\.json$/.test(path);

describe('the worker engine in a fresh Vite project', () => {
  it("vite build, no configuration: the package's worker and a one-line worker file generate the CLI's text, step by step; the page's script holds none of the engine", async () => {
    const context = await browser.newContext();
    for (const query of ['', '?own-worker']) {
      const { text, steps } = await visit(context, query);
      expect(text, query).toBe(await expectedText);
      expect(steps, query).toEqual([0, 1, 2, 3]);
    }
    await context.close();
    // The engine (its WGSL, its tokenizer) is in the worker's chunk; the page loads only the messaging.
    const assets = join(app, 'dist', 'assets');
    const scripts = readdirSync(assets).filter((f) => f.endsWith('.js'));
    const worker = scripts.filter((f) => f.startsWith('worker-'));
    const page = scripts.filter((f) => !worker.includes(f));
    expect([worker.length, page.length]).toEqual([1, 1]); // the two ways give one worker script
    for (const f of worker) expect(readFileSync(join(assets, f), 'utf8')).toContain('@compute');
    for (const f of page) expect(readFileSync(join(assets, f), 'utf8'), f).not.toMatch(/@compute|r50k/);
  });

  it("webpack 5, no configuration: the package's worker by its name generates the CLI's text", async () => {
    const context = await browser.newContext();
    expect((await visit(context, '', webpackServer.url)).text).toBe(await expectedText);
    await context.close();
  });

  it('a reload with the network cut: the worker reads the model from the Cache API and the page still generates', async () => {
    const context = await browser.newContext();
    network = () => undefined;
    const online = await visit(context, '?own-worker');
    expect(online.progress.filter((p) => p.cached)).toEqual([]);
    requested.length = 0;
    network = (path) => (isModelFile(path) ? 'cut' : undefined);
    const offline = await visit(context, '?own-worker');
    expect(offline.text).toBe(await expectedText);
    // config.json is tried first (a changed model is never served stale; Chromium retries a reset once), the shard is not.
    expect(new Set(requested.filter(isModelFile).map((p) => p.replace(/-[\w-]+(\.\w+)$/, '$1')))).toEqual(
      new Set(['/assets/config.json']),
    );
    expect(offline.progress[0]).toMatchObject({
      phase: 'download',
      file: 'config.json',
      cached: true,
      warning: expect.stringMatching(/using the config\.json cached by an earlier load$/),
    });
    expect(
      offline.progress.find((p) => p.phase === 'download' && p.file === 'model.safetensors' && p.ms !== undefined),
    ).toMatchObject({ cached: true });
    network = () => undefined;
    await context.close();
  });

  it('a throttled download reports its bytes as they arrive, from a model URL relative to the page', async () => {
    const context = await browser.newContext();
    network = (path) => (path.endsWith('.safetensors') ? 4 * 2 ** 20 : undefined);
    const { text, progress } = await visit(context, '?model=./weights/pgm-small/');
    network = () => undefined;
    expect(text).toBe(await expectedText);
    expect(requested).toContain('/weights/pgm-small/model.safetensors');
    const shard = progress.filter((p) => p.phase === 'download' && p.file === 'model.safetensors');
    const size = shard[0].total;
    expect(size).toBeGreaterThan(2 ** 20);
    // Many events, bytes rising in each, all before the shard is verified; then one with the time it took.
    const arriving = shard.slice(0, -1);
    expect(arriving.length).toBeGreaterThanOrEqual(5);
    for (let i = 1; i < arriving.length; i++) expect(arriving[i].loaded).toBeGreaterThan(arriving[i - 1].loaded);
    expect(arriving.every((p) => p.loadedBytes === p.loaded && p.total === size && p.ms === undefined)).toBe(true);
    expect(shard.at(-1)).toMatchObject({ loaded: size, loadedBytes: size, totalBytes: size, ms: expect.any(Number) });
    expect(progress.filter((p) => p.cached)).toEqual([]);
    expect(progress.findIndex((p) => p.phase === 'verify')).toBeGreaterThan(progress.indexOf(shard.at(-1)!));
    expect(progress.filter((p) => p.ms !== undefined && p.file === undefined).map((p) => p.phase)).toEqual([
      'upload',
      'compile',
    ]);
    await context.close();
  });
});
