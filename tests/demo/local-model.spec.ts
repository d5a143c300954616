/**
 * Local models in the demo, no server: a converted model folder picked with the folder button,
 * the authors' .ckpt layout picked with the file button (converted in the page) and both dropped
 * on the page (a synthetic drop event), each generating the CLI's text and coming back from the
 * cache as a choice of the model picker after a reload (and by ?model=local:<name>); and a model on another origin served
 * without CORS headers, whose message says CORS and how to serve it (which then works).
 */
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test, type Page } from '@playwright/test';
import { demoUrl } from './browser.js';
import { TEST_MODELS } from './make-test-models.js';
import { serveStatic } from './server.js';

/** The authors' checkpoint layout at V=50258 (D8, L24), stored in f16: converting it to f16 is exact. */
const CKPT = 'tests/fixtures/pgm-v50258/model.ckpt';
const SETTINGS = { prompt: 'Once upon a time', length: 24, steps: 8, seed: 5 };

const run = promisify(execFile);
const pgm = (...args: string[]) =>
  run('npx', ['tsx', 'src/cli/main.ts', ...args], { maxBuffer: 1 << 20 }).then(({ stdout }) =>
    stdout.replace(/\n$/, ''),
  );
const cliText = (modelDir: string) =>
  pgm(
    'generate',
    '--model',
    modelDir,
    '--prompt',
    SETTINGS.prompt,
    '--length',
    String(SETTINGS.length),
    '--steps',
    String(SETTINGS.steps),
    '--seed',
    String(SETTINGS.seed),
  );

/** The text the checkpoint generates once the CLI converted it as the page does (f16). */
async function ckptText(): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'pgm-demo-ckpt-'));
  try {
    await pgm('convert', CKPT, join(root, 'model'), '--dtype', 'f16');
    return await cliText(join(root, 'model'));
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

/** Every text the load line showed, recorded in the page. */
async function recordLoadText(page: Page): Promise<void> {
  await page.addInitScript(() => {
    const seen: string[] = ((window as unknown as { loadTexts: string[] }).loadTexts = []);
    document.addEventListener('DOMContentLoaded', () => {
      const line = document.getElementById('load-text')!;
      new MutationObserver(() => seen.push(line.textContent ?? '')).observe(line, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    });
  });
}
const loadTexts = (page: Page) => page.evaluate(() => (window as unknown as { loadTexts: string[] }).loadTexts);

async function generate(page: Page): Promise<string> {
  await page.fill('#text', SETTINGS.prompt);
  await page.fill('#length', String(SETTINGS.length));
  await page.fill('#steps', String(SETTINGS.steps));
  await page.fill('#seed', String(SETTINGS.seed));
  await page.click('#generate');
  const view = page.locator('.run');
  await expect(view).toHaveClass(/finished/);
  return (await view.locator('.text').textContent()) ?? '';
}

const info = (page: Page) => page.locator('#model-info');

/** Loads the default model, then waits until the page is ready for another. */
async function open(page: Page): Promise<void> {
  await page.goto(demoUrl());
  await expect(info(page)).toHaveText(new RegExp(`^${TEST_MODELS.pgm}: PGM`));
}

/** The model files of the page's worker requested from now on (a model from the cache asks for none). */
function modelRequests(page: Page): string[] {
  const urls: string[] = [];
  page.on('request', (r) => /\.(safetensors|json|ckpt)$/.test(new URL(r.url()).pathname) && urls.push(r.url()));
  return urls;
}

test('a model folder picked with "Open model folder…" loads from its files, generates the CLI text, and comes back from the cache after a reload and by ?model=local:<name>', async ({
  page,
}) => {
  // The MDLM: the PGM's shard is in the cache already, from the default model the page loads first.
  const dir = join(process.env.PGM_DEMO_MODELS!, TEST_MODELS.mdlm);
  const expected = cliText(dir);
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await open(page);
  await page.locator('#folder-input').setInputFiles(dir);
  await expect(info(page)).toHaveText(/^local:mdlm-test: MDLM, .* read from the files in [\d.]+ s; verified in/);
  await expect(page.locator('#model')).toHaveValue('local:mdlm-test');
  expect(await generate(page)).toBe(await expected);

  await page.reload();
  await expect(info(page)).toHaveText(new RegExp(`^${TEST_MODELS.pgm}: PGM`));
  await expect(page.locator('#model option[value="local:mdlm-test"]')).toHaveText(
    /^local:mdlm-test \(MDLM, f32, [\d.]+ MiB\)$/,
  );
  const requests = modelRequests(page);
  await page.selectOption('#model', 'local:mdlm-test');
  await expect(info(page)).toHaveText(
    /^local:mdlm-test: MDLM, .* read from this browser's cache in [\d.]+ s; verified in/,
  );
  expect(await generate(page)).toBe(await expected);
  expect(requests).toEqual([]);

  await page.goto(demoUrl('&model=local:mdlm-test'));
  await expect(info(page)).toHaveText(
    /^local:mdlm-test: MDLM, .* read from this browser's cache in [\d.]+ s; verified in/,
  );
  await expect(page.locator('#model')).toHaveValue('local:mdlm-test');
  await expect(page.locator('#problem')).toBeHidden();
  expect(requests.filter((url) => !url.endsWith('/weights-manifest.json'))).toEqual([]); // the page lists the manifest
  expect(errors).toEqual([]);
});

test('a .ckpt picked with "Open .ckpt or model files…" is converted in the page with progress, generates the text of the same conversion in the CLI, and reloads from the cache without converting', async ({
  page,
}) => {
  const expected = ckptText(); // in parallel with the browser
  await recordLoadText(page);
  await open(page);
  await page.locator('#files-input').setInputFiles(CKPT);
  await expect(info(page)).toHaveText(
    /^local:model: PGM, 0\.\d\dM parameters, length 24, [\d.]+ MiB converted into this browser's cache in [\d.]+ s, read from this browser's cache in [\d.]+ s; verified in/,
  );
  const texts = await loadTexts(page);
  expect(texts).toContainEqual(
    expect.stringMatching(
      /^Converting model\.ckpt into this browser's model cache: [\d.]+ MiB \/ [\d.]+ MiB written \(\d+%\)$/,
    ),
  );
  expect(texts.filter((t) => t.startsWith('Converting')).at(-1)).toMatch(/ \(100%\)$/);
  expect(await generate(page)).toBe(await expected);

  await page.reload();
  await expect(info(page)).toHaveText(new RegExp(`^${TEST_MODELS.pgm}: PGM`));
  const requests = modelRequests(page);
  await page.selectOption('#model', 'local:model');
  await expect(info(page)).toHaveText(/^local:model: PGM, .* read from this browser's cache in [\d.]+ s; verified in/);
  expect(await loadTexts(page)).not.toContainEqual(expect.stringMatching(/^Converting/));
  expect(await generate(page)).toBe(await expected);
  expect(requests).toEqual([]);
});

test("a .ckpt and a model folder's files dropped on the page load as the pickers load them", async ({ page }) => {
  await open(page);
  const dropped = async (files: { name: string; path: string }[]) => {
    const payload = await Promise.all(
      files.map(async (f) => ({ name: f.name, base64: (await readFile(f.path)).toString('base64') })),
    );
    const dataTransfer = await page.evaluateHandle((list) => {
      const dt = new DataTransfer();
      for (const f of list) dt.items.add(new File([Uint8Array.from(atob(f.base64), (c) => c.charCodeAt(0))], f.name));
      return dt;
    }, payload);
    await page.dispatchEvent('#runs', 'dragover', { dataTransfer });
    await expect(page.locator('#drop-overlay')).toBeVisible();
    await page.dispatchEvent('#runs', 'drop', { dataTransfer });
    await expect(page.locator('#drop-overlay')).toBeHidden();
  };
  await dropped([{ name: 'dropped.ckpt', path: CKPT }]);
  await expect(info(page)).toHaveText(/^local:dropped: PGM, .* converted into this browser's cache in/);
  await expect(page.locator('#model')).toHaveValue('local:dropped');

  const dir = join(process.env.PGM_DEMO_MODELS!, TEST_MODELS.mdlm);
  await dropped(['config.json', 'model.safetensors'].map((name) => ({ name, path: join(dir, name) })));
  await expect(info(page)).toHaveText(/^local:model: MDLM, .* read from the files in/);
  await expect(page.locator('#model option[value="local:dropped"]')).toHaveCount(1);
  await expect(page.locator('#model option[value="local:model"]')).toHaveCount(1);

  await dropped([{ name: 'model.safetensors', path: join(dir, 'model.safetensors') }]);
  await expect(page.locator('#problem .error')).toHaveText(
    'no config.json among the 1 file(s) picked (model.safetensors); pick a converted model folder (config.json and its .safetensors shards), or a .ckpt checkpoint',
  );
});

test('a model on another origin without CORS headers: the page says CORS and how to serve the folder; served that way, it loads', async ({
  page,
}) => {
  const models = process.env.PGM_DEMO_MODELS!;
  const other = await serveStatic({ '/': models }); // no Access-Control-Allow-Origin
  const url = `${other.url}/${TEST_MODELS.pgm}/`;
  const port = new URL(other.url).port;
  await page.goto(demoUrl(`&model=${encodeURIComponent(url)}`));
  const problem = page.locator('#problem .error');
  await expect(problem).toHaveText(
    new RegExp(
      `^${url}config\\.json: blocked by CORS: the server at ${other.url} answers, but without an Access-Control-Allow-Origin header that lets this page \\(${new URL(demoUrl()).origin}\\) read its files\\. Serve the model folder with that header, e\\.g\\. in the folder: npx http-server --cors -p ${port}, or: python3 -c ".*" ${port}$`,
    ),
  );
  // The advice, followed to the letter: the Python one-liner of the message, in the folder, on the same port.
  const command = /, or: (python3 -c ".*" \d+)$/.exec((await problem.textContent())!)![1];
  await other.close();
  // Nothing answers there now: that is not CORS, and the message does not say it is.
  await page.click('#load-url');
  await expect(problem).toHaveText(
    new RegExp(`^${url}config\\.json: fetch failed \\(Failed to fetch: the server is unreachable`),
  );
  const server = spawn('bash', ['-c', command], {
    cwd: models,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout.on('data', (d: Buffer) => d.toString().includes('Serving HTTP') && resolve());
      server.on('exit', (code) => reject(new Error(`the server exited (${code})`)));
    });
    await page.click('#load-url');
    await expect(info(page)).toHaveText(new RegExp(`^${url.replace(/[.]/g, '\\.')}: PGM, .* downloaded in`));
    await expect(page.locator('#problem')).toBeHidden();
  } finally {
    server.kill();
  }
});
