/**
 * The built demo on the random test models, in Chromium on WebGPU: load with progress,
 * generate with a fixed seed (the same text as the CLI), Stop, the weights cache (and the
 * eviction of a corrupt cached shard), device loss with "Reload engine", the race, and a
 * screenshot: in test-results/demo/, or where PGM_DEMO_SCREENSHOT says (the README's is
 * docs/demo.png; writing it on every run would dirty the working tree).
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test, type Page } from '@playwright/test';
import { demoUrl } from './browser.js';
import { TEST_MODELS } from './make-test-models.js';

const SETTINGS = { prompt: 'Once upon a time', length: 48, steps: 8, seed: 3, order: 'random' };

function cliText(): Promise<string> {
  const args = ['tsx', 'src/cli/main.ts', 'generate', '--model', join(process.env.PGM_DEMO_MODELS!, TEST_MODELS.pgm)];
  args.push(
    '--prompt',
    SETTINGS.prompt,
    '--length',
    String(SETTINGS.length),
    '--steps',
    String(SETTINGS.steps),
    '--seed',
    String(SETTINGS.seed),
    '--order',
    SETTINGS.order,
  );
  return promisify(execFile)('npx', args, { maxBuffer: 1 << 20 }).then(({ stdout }) => stdout.replace(/\n$/, ''));
}

async function settle(page: Page, settings: Partial<typeof SETTINGS> = {}): Promise<void> {
  const s = { ...SETTINGS, ...settings };
  await page.fill('#text', s.prompt);
  await page.fill('#length', String(s.length));
  await page.fill('#steps', String(s.steps));
  await page.fill('#seed', String(s.seed));
  await page.selectOption('#order', s.order);
}

const modelInfo = (page: Page) => page.locator('#model-info');

test('the demo loads a model, generates the CLI text, stops, caches, survives device loss and races', async ({
  page,
}, testInfo) => {
  const expected = cliText(); // in parallel with the browser
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));

  await test.step('load with progress', async () => {
    await page.goto(demoUrl());
    await expect(page.locator('#adapter')).toContainText('GPU:');
    await expect(page.locator('#adapter')).toContainText('shader-f16');
    await expect(modelInfo(page)).toContainText(`${TEST_MODELS.pgm}: PGM`);
    await expect(modelInfo(page)).toContainText('downloaded');
    await expect(page.locator('#generate')).toBeEnabled();
  });

  await test.step('generate: the grid fills and the text equals the CLI', async () => {
    await settle(page);
    await page.click('#generate');
    const run = page.locator('.run');
    await expect(run).toHaveClass(/finished/);
    const cells = run.locator('.cell');
    await expect(cells).toHaveCount(SETTINGS.length);
    await expect(run.locator('.cell:not(.given):not(.revealed)')).toHaveCount(0);
    await expect(run.locator('.cell.given')).not.toHaveCount(0); // BOS and the prompt
    await expect(run.locator('.chart rect')).toHaveCount(SETTINGS.steps);
    await expect(run.locator('.counter')).toContainText(`done: ${SETTINGS.steps} steps`);
    expect(await run.locator('.text').textContent()).toBe(await expected);
  });

  await test.step('Stop cancels within a step and the engine stays usable', async () => {
    // The longest generation the test model allows (L 64, about a token a step: ~10 ms a step on an
    // idle machine). A generation that ends before the click lands proves nothing: run it again.
    await settle(page, { length: 64, steps: 56 });
    for (let attempt = 1; ; attempt++) {
      await page.click('#generate');
      await expect(page.locator('.run .counter')).toHaveText(/^(step \d+ \/|failed)/);
      if ((await page.locator('.run .counter').textContent()) === 'failed')
        expect(await page.locator('#problem').textContent()).toBe('');
      await page.click('#stop');
      await expect(page.locator('.run .counter')).toHaveText(/^(stopped|done)/);
      if ((await page.locator('.run .counter').textContent()) === 'stopped') break;
      expect(attempt, 'Stop never landed before the generation ended').toBeLessThan(5);
    }
    await expect(page.locator('.run .cell:not(.given):not(.revealed)')).not.toHaveCount(0);
    await expect(page.locator('#generate')).toBeEnabled();
  });

  await test.step('a reload reads the weights from the cache; a corrupt cached shard is evicted and fetched again', async () => {
    await page.reload();
    await expect(modelInfo(page)).toContainText("from this browser's cache");
    const sha256 = JSON.parse(
      await readFile(join(process.env.PGM_DEMO_MODELS!, TEST_MODELS.pgm, 'config.json'), 'utf8'),
    ).shards[0].sha256 as string;
    await page.evaluate(async (sha256) => {
      const cache = await caches.open('pgm-webgpu-models');
      // The library keeps shards by their sha256.
      const shard = (await cache.keys()).find((r) => decodeURIComponent(r.url).endsWith(`sha256:${sha256}`))!;
      const bytes = new Uint8Array(await (await cache.match(shard))!.arrayBuffer());
      bytes[bytes.length - 1] ^= 0xff;
      await cache.put(shard, new Response(bytes));
    }, sha256);
    await page.reload();
    await expect(modelInfo(page)).toContainText(`${TEST_MODELS.pgm}: PGM`);
    await expect(modelInfo(page)).toContainText('downloaded');
    await expect(page.locator('#load-warnings')).toHaveText(
      /^Warning: the cached copy of model\.safetensors is damaged \(sha256 mismatch .*\); evicted, downloading it again$/,
    );
    await expect(page.locator('#problem')).toBeHidden();
  });

  await test.step('device loss shows the error and "Reload engine" brings the engine back', async () => {
    await page.evaluate(() => (window as unknown as { pgmDemo: { loseDevice(): void } }).pgmDemo.loseDevice());
    await expect(page.locator('#problem')).toContainText('GPU device was lost');
    await page.getByRole('button', { name: 'Reload engine' }).click();
    await expect(modelInfo(page)).toContainText("from this browser's cache");
    await expect(page.locator('#generate')).toBeEnabled();
  });

  await test.step('race against the MDLM twin (the PGM exact, incremental and adaptive), then the screenshot', async () => {
    await settle(page, { length: 64, steps: 16 });
    await page.click('#race');
    await expect(page.locator('[data-testid=speedup]')).toContainText('PGM exact is');
    await expect(page.locator('.run.finished')).toHaveCount(4);
    await page.screenshot({
      path: process.env.PGM_DEMO_SCREENSHOT ?? testInfo.outputPath('demo.png'),
      fullPage: true,
      animations: 'disabled',
    });
  });

  expect(errors).toEqual([]);
});
