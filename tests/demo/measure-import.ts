/**
 * Memory and time of a checkpoint converted in the demo page: the .ckpt is picked with "Open
 * .ckpt or model files…", the worker converts it into the Cache API (importCheckpoint: 64 MiB f16
 * shards) and loads it. Samples the resident memory of Chromium's processes every 100 ms and
 * prints the peak of the renderer (the page and its worker) while the page says "Converting",
 * then while it loads, next to the file's size.
 *
 *   npm run build:demo && npx tsx tests/demo/measure-import.ts <model.ckpt>
 */
import { readFile, readdir, mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright';
import { BASE_ARGS, CHROMIUM, WEBGPU_ARGS } from './browser.js';
import { makeTestModels } from './make-test-models.js';
import { serveStatic } from './server.js';

const ckpt = process.argv[2];
if (!ckpt) {
  console.error('usage: npx tsx tests/demo/measure-import.ts <model.ckpt>');
  process.exit(2);
}
const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

/** Resident bytes of `pid` and its descendants, by kind (browser, renderer, gpu-process, ...). */
async function residentByKind(root: number): Promise<Map<string, number>> {
  const parent = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const line = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    const ppid = Number(line.slice(line.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid) parent.set(Number(entry), ppid);
  }
  const inTree = (pid: number): boolean => pid === root || (parent.has(pid) && inTree(parent.get(pid)!));
  const kinds = new Map<string, number>();
  for (const pid of [root, ...parent.keys()].filter(inTree)) {
    const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
    const kind = /--type=([\w-]+)/.exec(cmdline)?.[1] ?? (pid === root ? 'browser' : 'other');
    const utility = kind === 'utility' ? `utility:${/--utility-sub-type=([\w.]+)/.exec(cmdline)?.[1] ?? '?'}` : kind;
    kinds.set(utility, (kinds.get(utility) ?? 0) + rss);
  }
  return kinds;
}

const models = await mkdtemp(join(tmpdir(), 'pgm-measure-import-'));
await makeTestModels(models);
const server = await serveStatic({ '/': 'dist-demo', '/test-models/': models });
const profile = join(models, 'profile');
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  args: [...BASE_ARGS, ...WEBGPU_ARGS],
});
try {
  const page = context.pages()[0] ?? (await context.newPage());
  await page.goto(`${server.url}/demo/?manifest=/test-models/weights-manifest.json`);
  await page.waitForFunction(() => (document.getElementById('model-info')?.textContent ?? '') !== '', undefined, {
    timeout: 300_000,
  });
  // The browser process: the one whose command line names this profile.
  let browserPid = 0;
  for (const entry of (await readdir('/proc')).filter((e) => /^\d+$/.test(e))) {
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(profile) && !cmdline.includes('--type=')) browserPid = Number(entry);
  }
  const before = await residentByKind(browserPid);
  const peaks: Record<'convert' | 'load', Map<string, number>> = { convert: new Map(), load: new Map() };
  await page.locator('#files-input').setInputFiles(resolve(ckpt));
  const start = Date.now();
  for (;;) {
    const [text, info] = await Promise.all([
      page.locator('#load-text').textContent(),
      page.locator('#model-info').textContent(),
    ]);
    if (info?.startsWith('local:')) break;
    const problem = await page.locator('#problem').textContent();
    if (problem) throw new Error(problem);
    const phase = text?.startsWith('Converting') ? 'convert' : 'load';
    for (const [kind, rss] of await residentByKind(browserPid))
      peaks[phase].set(kind, Math.max(peaks[phase].get(kind) ?? 0, rss));
    await new Promise((r) => setTimeout(r, 100));
  }
  const line = (m: Map<string, number>) =>
    [...m]
      .sort()
      .map(([k, v]) => `${k} ${mib(v)}`)
      .join(', ');
  console.log(`checkpoint ${ckpt}: ${mib((await stat(ckpt)).size)}`);
  console.log(`before: ${line(before)}`);
  console.log(`peak while converting: ${line(peaks.convert)}`);
  console.log(`peak while loading: ${line(peaks.load)}`);
  console.log(
    `${await page.locator('#model-info').textContent()} (${((Date.now() - start) / 1000).toFixed(1)} s in all)`,
  );
  console.log(
    JSON.stringify({
      file: (await stat(ckpt)).size,
      before: Object.fromEntries(before),
      convert: Object.fromEntries(peaks.convert),
      load: Object.fromEntries(peaks.load),
    }),
  );
} finally {
  await context.close();
  await server.close();
  await rm(models, { recursive: true, force: true });
}
