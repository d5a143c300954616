/**
 * The package as strangers use it: `npm pack`, then tiny projects in a temporary folder that
 * install the tarball and build with their own tool and no configuration (Vite build + preview,
 * Vite dev, webpack 5, esbuild, a plain page with an import map), a Node ESM script, the CLI and
 * a strict TypeScript consumer. Each page runs in headless Chromium (SwiftShader) and must show
 * the text the Node script prints for the same seed: the same model, the same kernels.
 * The bundlers are this project's devDependencies, run from here with the consumer as cwd;
 * installs come from npm's cache (`--prefer-offline`), which `npm ci` filled.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { chromium, type Browser } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BASE_ARGS, CHROMIUM, WEBGPU_ARGS } from '../demo/browser.js';
import { serveStatic } from '../demo/server.js';

const run = promisify(execFile);
const ROOT = join(import.meta.dirname, '..', '..');
const BIN = (tool: string) => join(ROOT, 'node_modules', '.bin', tool);
const work = mkdtempSync(join(tmpdir(), 'pgm-consumers-'));
let tarball = '';
let browser: Browser;
const servers: { close(): Promise<void> }[] = [];
const children: ChildProcess[] = [];

/** The generation every consumer runs; the Node script's text is the expected one. */
const GENERATE = "{ prompt: 'It was', length: 24, steps: 4, seed: 3 }";
let expectedText: string | undefined;

const sh = async (cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) =>
  run(cmd, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 1 << 24 });

/** A fresh project folder with `files` (relative path -> text), the tarball and `extra` packages installed. */
async function project(name: string, files: Record<string, string>, extra: string[] = []): Promise<string> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: `consumer-${name}`, private: true, type: 'module' }));
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(join(dir, file, '..'), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  await sh('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error', tarball, ...extra], dir);
  return dir;
}

/** A page that generates with the package and writes the text into #out (or the error into #error). */
const page = (script: string, head = ''): string =>
  `<!doctype html><meta charset="utf-8">${head}<pre id="out"></pre><pre id="error"></pre><script type="module" src="${script}"></script>\n`;

/** The browser side of every page: `createEngine(<args>)`, one generation, its text in #out. */
const pageScript = (createArgs = '') => `import { createEngine } from 'pgm-webgpu';
createEngine(${createArgs})
  .then((engine) => engine.generate(${GENERATE}))
  .then((result) => { document.querySelector('#out').textContent = JSON.stringify(result.text); })
  .catch((e) => { document.querySelector('#error').textContent = String(e && e.message || e); });
`;

/** Open `url` in Chromium and return the generated text (or fail with the page's error). */
async function textAt(url: string): Promise<string> {
  expect(expectedText, 'the Node consumer ran first and set the expected text').toBeDefined();
  const context = await browser.newContext();
  try {
    const tab = await context.newPage();
    const logs: string[] = [];
    tab.on('console', (m) => logs.push(m.text()));
    tab.on('pageerror', (e) => logs.push(e.message));
    await tab.goto(url);
    await tab.waitForFunction(() => document.querySelector('#out')?.textContent || document.querySelector('#error')?.textContent, null, { timeout: 120_000 });
    const error = await tab.textContent('#error');
    if (error) throw new Error(`${url}: ${error}\n${logs.join('\n')}`);
    return JSON.parse((await tab.textContent('#out')) ?? '""') as string;
  } finally {
    await context.close();
  }
}

/** Start a long-running server (vite dev / preview) and resolve with the URL it prints. */
function startServer(args: string[], cwd: string): Promise<string> {
  const child = spawn(process.execPath, args, { cwd, env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  return new Promise((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const url = out.match(/https?:\/\/(?:localhost|127\.0\.0\.1):\d+\/\S*/);
      if (url) resolve(url[0]);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}:\n${out}`)));
  });
}

beforeAll(async () => {
  // PGM_CONSUMER_TARBALL: test another build of the package (an older release, say).
  tarball = process.env.PGM_CONSUMER_TARBALL ?? '';
  if (!tarball) {
    const packed = join(work, 'pack');
    mkdirSync(packed);
    await sh('npm', ['pack', '--pack-destination', packed, '--loglevel=error'], ROOT);
    tarball = join(packed, readdirSync(packed).find((f) => f.endsWith('.tgz'))!);
  }
  browser = await chromium.launch({ executablePath: CHROMIUM, args: [...BASE_ARGS, ...WEBGPU_ARGS] });
}, 300_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(servers.map((s) => s.close()));
  await browser?.close();
  rmSync(work, { recursive: true, force: true });
});

describe('the packed package in fresh projects', () => {
  it('the tarball carries the models and no .wgsl files or sources', async () => {
    const { stdout } = await sh('tar', ['-tzf', tarball], work);
    const files = stdout.split('\n');
    expect(files).toContain('package/models/pgm-small/model.safetensors');
    expect(files).toContain('package/dist/gpu/wgsl.js');
    expect(files).toContain('package/LICENSE');
    expect(files.filter((f) => f.endsWith('.wgsl') || f.startsWith('package/src/'))).toEqual([]);
  });

  it('Node ESM script: createEngine() with no argument generates with the default model', async () => {
    const dir = await project('node', {
      'main.js': `import { createEngine } from 'pgm-webgpu/node';
const engine = await createEngine();
const { text } = await engine.generate(${GENERATE});
const incremental = await engine.generate({ ...${GENERATE}, encoder: 'incremental' });
console.log(JSON.stringify({ arch: engine.config.arch, text, incremental: incremental.text, rows: [incremental.stats.encoderRows, (await engine.generate(${GENERATE})).stats.encoderRows] }));
engine.dispose();
`,
    }, ['webgpu']);
    const { stdout } = await sh('node', ['main.js'], dir);
    const result = JSON.parse(stdout) as { arch: string; text: string; incremental: string; rows: [number, number] };
    expect(result.arch).toBe('pgm');
    expect(result.text.startsWith('It was')).toBe(true);
    expect(result.text.length).toBeGreaterThan(20);
    expectedText = result.text;

    // The CLI of the installed package prints the same text for the same settings.
    const cli = await sh('npx', ['--no-install', 'pgm', 'generate', '--prompt', 'It was', '--length', '24', '--steps', '4', '--seed', '3'], dir);
    expect(cli.stdout.trim()).toBe(expectedText.trim());
    // ... and with the incremental encoder, which encodes fewer rows.
    const kv = await sh('npx', ['--no-install', 'pgm', 'generate', '--prompt', 'It was', '--length', '24', '--steps', '4', '--seed', '3', '--encoder', 'incremental'], dir);
    expect(kv.stdout.trim()).toBe(result.incremental.trim());
    expect(result.rows[0]).toBeLessThan(result.rows[1]);

    // manifestUrl is honoured in Node (a manifest on disk whose default is the MDLM twin) ...
    const manifest = join(dir, 'node_modules', 'pgm-webgpu', 'weights-manifest.json');
    writeFileSync(join(dir, 'mdlm.mjs'), `import { readFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { createEngine } from 'pgm-webgpu/node';
const m = JSON.parse(readFileSync(${JSON.stringify(manifest)}, 'utf8'));
m.default = 'mdlm-small';
m.models = m.models.map((e) => ({ ...e, path: '${join(dir, 'node_modules', 'pgm-webgpu').replace(/\\/g, '/')}/' + e.path }));
writeFileSync('mine.json', JSON.stringify(m));
for (const manifestUrl of ['mine.json', pathToFileURL('mine.json')]) {
  const engine = await createEngine({ manifestUrl });
  console.log(engine.config.arch);
  engine.dispose();
}
// ... or refused with a typed error, never ignored.
await createEngine({ manifestUrl: 'data:application/json,{}' }).catch((e) => console.log(e.code));
`);
    expect((await sh('node', ['mdlm.mjs'], dir)).stdout.trim().split('\n')).toEqual(['mdlm', 'mdlm', 'option']);
  });

  it('Node without the optional webgpu package: a typed error that says how to install it', async () => {
    const dir = await project('node-no-webgpu', {
      'main.js': `import { createEngine } from 'pgm-webgpu/node';
await createEngine().catch((e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })));
`,
    });
    const error = JSON.parse((await sh('node', ['main.js'], dir)).stdout) as { name: string; code: string; message: string };
    expect(error).toMatchObject({ name: 'PgmError', code: 'webgpu' });
    expect(error.message).toContain('npm install webgpu');
  });

  it('strict TypeScript without skipLibCheck type-checks both entries', async () => {
    const dir = await project('typescript', {
      'tsconfig.json': JSON.stringify({
        compilerOptions: { strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'DOM'], types: [], noEmit: true },
        include: ['*.ts'],
      }),
      'browser.ts': `import { createEngine, requestGpu, PgmError, type EncoderMode, type StepEvent } from 'pgm-webgpu';
const ctx = await requestGpu();
const engine = await createEngine({ model: 'pgm-small', maxBatch: 2, gpu: ctx });
for await (const step of engine.generate({ prompt: 'It was', length: 24 })) { const s: StepEvent = step; console.log(s.text); }
const encoder: EncoderMode = 'incremental';
for await (const step of engine.generate({ length: 24, encoder, refresh: 4 })) console.log(step.encoderRows, step.decoderRows);
const device: GPUDevice = ctx.device;
console.log(device, PgmError);
`,
      'node.ts': `import { createEngine, type GenerationResult } from 'pgm-webgpu/node';
const engine = await createEngine();
const result: GenerationResult = await engine.generate({ seed: 1 });
console.log(result.text);
`,
    });
    await sh('node', [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], dir);
  });

  it('esbuild --bundle (no asset handling): builds for the browser, loads an explicitly hosted model', async () => {
    const dir = await project('esbuild', {
      'index.html': page('./out/main.js'),
      'main.js': pageScript("{ model: new URL('./weights/pgm-small/', location.href).href }"),
    });
    await sh(BIN('esbuild'), ['main.js', '--bundle', '--format=esm', '--outfile=out/main.js', '--log-level=warning'], dir);
    // Hosting the weights yourself: copy the package's model directory next to the page.
    cpSync(join(dir, 'node_modules', 'pgm-webgpu', 'models', 'pgm-small'), join(dir, 'weights', 'pgm-small'), { recursive: true });
    const server = await serveStatic({ '/': dir });
    servers.push(server);
    expect(await textAt(`${server.url}/index.html`)).toBe(expectedText);
  });

  it('a plain page with an import map and no build step: createEngine() finds the model beside the package', async () => {
    const map = {
      imports: {
        'pgm-webgpu': './node_modules/pgm-webgpu/dist/index.js',
        'gpt-tokenizer/encoding/r50k_base': './node_modules/gpt-tokenizer/esm/encoding/r50k_base.js',
        'gpt-tokenizer/bpeRanks/r50k_base': './node_modules/gpt-tokenizer/esm/bpeRanks/r50k_base.js',
      },
    };
    const dir = await project('plain-html', {
      'index.html': page('./main.js', `<script type="importmap">${JSON.stringify(map)}</script>`),
      'main.js': pageScript(),
    });
    const server = await serveStatic({ '/': dir });
    servers.push(server);
    expect(await textAt(`${server.url}/index.html`)).toBe(expectedText);
  });

  it('Vite: vite build + vite preview, no configuration', async () => {
    const dir = await project('vite-build', { 'index.html': page('./main.js'), 'main.js': pageScript() });
    await sh(process.execPath, [join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], dir);
    const emitted = readdirSync(join(dir, 'dist', 'assets'));
    expect(emitted.filter((f) => f.endsWith('.safetensors')).length).toBeGreaterThan(0);
    expect(emitted.filter((f) => statSync(join(dir, 'dist', 'assets', f)).size === 0)).toEqual([]);
    const url = await startServer([join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'preview'], dir);
    expect(await textAt(url)).toBe(expectedText);
  });

  it('Vite: the dev server, with its dependency pre-bundling, no configuration', async () => {
    const dir = await project('vite-dev', { 'index.html': page('./main.js'), 'main.js': pageScript() });
    const url = await startServer([join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js')], dir);
    expect(await textAt(url)).toBe(expectedText);
  });

  it('webpack 5: zero-configuration build (src/index.js -> dist/main.js)', async () => {
    const dir = await project('webpack', { 'src/index.js': pageScript(), 'dist/index.html': page('./main.js') });
    await sh(process.execPath, [join(ROOT, 'node_modules', 'webpack-cli', 'bin', 'cli.js'), '--mode', 'production', '--no-stats'], dir);
    const server = await serveStatic({ '/': join(dir, 'dist') });
    servers.push(server);
    expect(await textAt(`${server.url}/index.html`)).toBe(expectedText);
  });
});
