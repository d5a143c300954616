/**
 * Time from page load to the first revealed token and to the full text, with a cold cache
 * (fresh browser profile) and with the weights cached (same profile, reloaded).
 *
 *   npm run build:demo && npx tsx tests/demo/measure.ts [--model-dir <dir with weights-manifest.json>] [--runs 2] [--screenshot out.png]
 *
 * Without --model-dir it writes the random test models. Prints one line per run and a JSON
 * summary; --screenshot saves the page after the last generation (docs/demo.png comes from
 * `--model-dir . --runs 1 --screenshot docs/demo.png`: the shipped models).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { chromium, type Page } from 'playwright';
import { BASE_ARGS, CHROMIUM, WEBGPU_ARGS } from './browser.js';
import { makeTestModels } from './make-test-models.js';
import { serveStatic } from './server.js';

const { values } = parseArgs({
  options: {
    'model-dir': { type: 'string' },
    runs: { type: 'string', default: '2' },
    length: { type: 'string', default: '64' },
    steps: { type: 'string', default: '16' },
    screenshot: { type: 'string' },
  },
});

interface Times {
  modelReady: number;
  /** Reading (download or cache) + verifying the files, and GPU upload + pipelines, in the worker. */
  readMs: number;
  gpuMs: number;
  fromCache: boolean;
  firstToken: number;
  fullText: number;
  generateClicked: number;
}

async function measure(page: Page, url: string): Promise<Times> {
  await page.goto(url);
  const mark = (name: string) =>
    page
      .waitForFunction((n) => performance.getEntriesByName(n)[0]?.startTime, name, { polling: 5, timeout: 300_000 })
      .then((h) => h.jsonValue() as Promise<number>);
  const modelReady = await mark('pgm-model-ready');
  const { readMs, gpuMs, fromCache } = await page.evaluate(
    () =>
      (performance.getEntriesByName('pgm-model-ready')[0] as PerformanceMark).detail as {
        readMs: number;
        gpuMs: number;
        fromCache: boolean;
      },
  );
  await page.fill('#length', values.length!);
  await page.fill('#steps', values.steps!);
  await page.click('#generate');
  const [generateClicked, firstToken, fullText] = [
    await mark('pgm-generate'),
    await mark('pgm-first-token-main'),
    await mark('pgm-done-main'),
  ];
  return { modelReady, readMs, gpuMs, fromCache, generateClicked, firstToken, fullText };
}

const created = values['model-dir'] ? undefined : await mkdtemp(join(tmpdir(), 'pgm-demo-measure-'));
const modelDir = values['model-dir'] ? resolve(values['model-dir']) : (await makeTestModels(created!), created!);
const server = await serveStatic({ '/': 'dist-demo', '/test-models/': modelDir });
const url = `${server.url}/demo/?manifest=/test-models/weights-manifest.json`;
const rows: (Times & { cache: string })[] = [];
try {
  for (let run = 0; run < Number(values.runs); run++) {
    const profile = await mkdtemp(join(tmpdir(), 'pgm-demo-profile-'));
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: [...BASE_ARGS, ...WEBGPU_ARGS],
      viewport: { width: 1180, height: 900 },
    });
    try {
      const page = context.pages()[0] ?? (await context.newPage());
      for (const cache of ['cold', 'cached']) {
        const t = await measure(page, url);
        rows.push({ cache, ...t });
        const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
        if (values.screenshot && run === Number(values.runs) - 1 && cache === 'cached')
          await page.screenshot({ path: values.screenshot, fullPage: true, animations: 'disabled' });
        console.log(
          `run ${run + 1} ${cache.padEnd(6)}  model ready ${s(t.modelReady)} (files ${s(t.readMs)}${t.fromCache ? ' from cache' : ''}, GPU ${s(t.gpuMs)})  first token ${s(t.firstToken)}  full text ${s(t.fullText)}  (generate clicked at ${s(t.generateClicked)})`,
        );
      }
    } finally {
      await context.close();
      await rm(profile, { recursive: true, force: true });
    }
  }
  console.log(JSON.stringify({ length: Number(values.length), steps: Number(values.steps), rows }));
} finally {
  await server.close();
  if (created) await rm(created, { recursive: true, force: true });
}
