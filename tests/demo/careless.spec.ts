/**
 * The demo given careless input: a manifest entry without `arch`, a `?model=` the manifest
 * does not have, a shard served larger than its declared size, an empty number field, a data:
 * manifest with relative paths, a manifest of 2,000 models. The page says what is wrong in
 * words, throws nothing, and downloads a bad shard once.
 */
import { expect, test, type Page } from '@playwright/test';
import { demoUrl } from './browser.js';
import { TEST_MODELS } from './make-test-models.js';

function pageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  return errors;
}

test('a manifest entry without arch is named in a message; the page still offers a model by URL', async ({ page }) => {
  const errors = pageErrors(page);
  await page.route(
    (url) => url.pathname === '/test-models/weights-manifest.json',
    async (route) => {
      const manifest = await (await route.fetch()).json();
      delete manifest.models[1].arch;
      await route.fulfill({ json: manifest });
    },
  );
  await page.goto(demoUrl());
  await expect(page.locator('#problem .error')).toHaveText(
    /weights-manifest\.json: models\[1\]\.arch must be "pgm" or "mdlm", got undefined\. You can still load a converted model directory by URL\.$/,
  );
  await expect(page.locator('#model option')).toHaveText(['Model directory by URL…']);
  expect(errors).toEqual([]);
});

test('?model=no-such-model says the manifest has no such model, lists its models and loads the default', async ({
  page,
}) => {
  const errors = pageErrors(page);
  await page.goto(demoUrl('&model=no-such-model'));
  await expect(page.locator('#model-info')).toContainText(`${TEST_MODELS.pgm}: PGM`);
  await expect(page.locator('#problem .error')).toHaveText(
    `?model=no-such-model: /test-models/weights-manifest.json has no such model (it has: ${TEST_MODELS.pgm}, ${TEST_MODELS.mdlm}); give one of those ids or a model directory URL (https:, / or ./). Loaded ${TEST_MODELS.pgm} instead.`.replace(
      '/test-models',
      new URL(demoUrl()).origin + '/test-models',
    ),
  );
  expect(errors).toEqual([]);
});

test('a shard served larger than declared is an integrity error after one request, and is not cached', async ({
  page,
}) => {
  const errors = pageErrors(page);
  let requests = 0;
  await page.route(
    (url) => url.pathname.startsWith(`/test-models/${TEST_MODELS.pgm}/`) && url.pathname.endsWith('.safetensors'),
    async (route) => {
      requests++;
      const shard = await (await route.fetch()).body();
      await route.fulfill({ body: Buffer.concat([shard, Buffer.alloc(2 ** 20)]) });
    },
  );
  await page.goto(demoUrl());
  await expect(page.locator('#problem .error')).toHaveText(
    /^shard [\w.-]+\.safetensors: larger than its declared \d+ bytes \(the server announces \d+\); the server's copy is damaged or belongs to another version of the model; try again, or fix the files on the server$/,
  );
  expect(requests).toBe(1);
  const cached = await page.evaluate(async () =>
    (await (await caches.open('pgm-webgpu-models')).keys())
      .map((r) => decodeURIComponent(r.url))
      .filter((u) => u.includes('sha256:')),
  );
  expect(cached).toEqual([]);
  expect(errors).toEqual([]);
});

test('an empty Length is named, not read as 0; a data: manifest with a relative model path says so; 2,000 models list 500', async ({
  page,
}) => {
  const errors = pageErrors(page);
  await page.goto(demoUrl());
  await expect(page.locator('#generate')).toBeEnabled();
  await page.fill('#length', '');
  await page.click('#generate');
  await expect(page.locator('#problem .error')).toHaveText('Length is empty: give a number');

  const manifest = await (
    await page.request.get(`${new URL(demoUrl()).origin}/test-models/weights-manifest.json`)
  ).json();
  const data = `data:application/json,${encodeURIComponent(JSON.stringify(manifest))}`;
  await page.goto(`${new URL(demoUrl()).origin}/demo/?manifest=${encodeURIComponent(data)}`);
  await expect(page.locator('#problem .error')).toHaveText(
    new RegExp(
      `^data:application/json,.*: model ${TEST_MODELS.pgm} has the path "${TEST_MODELS.pgm}/", which names no URL relative to a data: manifest; give an absolute http\\(s\\) URL$`,
    ),
  );
  await expect(page.locator('#model')).toBeEnabled();

  await page.route(
    (url) => url.pathname === '/test-models/weights-manifest.json',
    async (route) => {
      const many = {
        ...manifest,
        models: [
          ...manifest.models,
          ...Array.from({ length: 2000 }, (_, i) => ({ ...manifest.models[0], id: `copy-${i}`, twin: undefined })),
        ],
      };
      await route.fulfill({ json: many });
    },
  );
  await page.goto(demoUrl());
  await expect(page.locator('#model-info')).toContainText(`${TEST_MODELS.pgm}: PGM`);
  await expect(page.locator('#model option')).toHaveCount(502);
  await expect(page.locator('#model option').nth(500)).toHaveText(
    '… 1502 more in the manifest: open the page with ?model=<id>',
  );
  expect(errors).toEqual([]);
});
