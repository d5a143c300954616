/**
 * Loading in the demo: Stop cancels a load and leaves the page usable (the picker back, "Load it
 * again"), the model line gives each load phase its time, and a cache write the browser refuses
 * (a tiny quota set through the DevTools protocol) is a warning line, never silent.
 */
import { expect, test } from '@playwright/test';
import { demoUrl } from './browser.js';
import { TEST_MODELS } from './make-test-models.js';

const isShard = (url: URL) => url.pathname === `/test-models/${TEST_MODELS.pgm}/model.safetensors`;
const PHASES =
  /downloaded in [\d.]+ s; verified in [\d.]+ s, uploaded in [\d.]+ s, compiled in [\d.]+ s, warmed up in [\d.]+ s$/;

test('Stop during a load cancels it and leaves the page usable; the model line gives each phase its time', async ({
  page,
}) => {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  let requested!: () => void;
  const shardRequested = new Promise<void>((resolve) => (requested = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  await page.route(isShard, async (route) => {
    requested();
    await released;
    await route.continue().catch(() => undefined); // aborted meanwhile
  });
  await page.goto(demoUrl());
  await shardRequested;
  await expect(page.locator('#load-text')).toHaveText(/^Loading pgm-test/);
  await expect(page.locator('#model')).toBeDisabled();
  await page.click('#stop');
  await expect(page.locator('#problem .error')).toHaveText(`Loading ${TEST_MODELS.pgm} stopped.`);
  await expect(page.locator('#loading')).toBeHidden();
  await expect(page.locator('#model')).toBeEnabled();
  await expect(page.locator('#generate')).toBeDisabled();
  release();
  await page.unroute(isShard);
  await page.getByRole('button', { name: 'Load it again' }).click();
  await expect(page.locator('#model-info')).toHaveText(new RegExp(`^${TEST_MODELS.pgm}: PGM, .* ${PHASES.source}`));
  await expect(page.locator('#generate')).toBeEnabled();
  await expect(page.locator('#problem')).toBeHidden();
  expect(errors).toEqual([]);
});

test('a cache write the browser refuses is a warning line under the model, and the next visit downloads again', async ({
  page,
  context,
}) => {
  const origin = new URL(demoUrl()).origin;
  await page.goto(`${origin}/test-models/weights-manifest.json`); // the origin, before its quota is set
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 2 ** 20 });
  await page.goto(demoUrl());
  await expect(page.locator('#model-info')).toHaveText(new RegExp(`^${TEST_MODELS.pgm}: PGM, .* ${PHASES.source}`));
  await expect(page.locator('#load-warnings')).toHaveText(
    /^Warning: model\.safetensors \([\d.]+ MiB\) could not be stored in the cache \(QuotaExceededError: .*\); it will be downloaded again next time$/,
  );
  await page.reload();
  await expect(page.locator('#model-info')).toContainText('downloaded in');
  await expect(page.locator('#load-warnings')).toContainText('could not be stored in the cache');
});
