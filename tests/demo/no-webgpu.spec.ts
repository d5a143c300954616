/**
 * Without WebGPU the demo says so in plain words and how to enable it: no blank page, no
 * stack trace. Chromium launched without the WebGPU flags still has navigator.gpu but no
 * adapter (--disable-webgpu changes nothing here); a browser without navigator.gpu at all is
 * simulated by removing it before the page runs.
 */
import { expect, test, type Page } from '@playwright/test';
import { BASE_ARGS, CHROMIUM, demoUrl } from './browser.js';

test.use({ launchOptions: { executablePath: CHROMIUM, args: BASE_ARGS } });

async function expectPlainMessage(page: Page, reason: RegExp): Promise<void> {
  const problem = page.locator('#problem');
  await expect(problem.locator('.error')).toHaveText(reason);
  await expect(problem.locator('li')).toHaveCount(4);
  await expect(problem).toContainText('chrome://flags');
  await expect(problem).not.toContainText(/\bat \S+:\d+|Error:/);
  await expect(page.locator('#generate')).toBeDisabled();
}

test('no adapter: the page explains that WebGPU found no GPU and how to enable it', async ({ page }) => {
  await page.goto(demoUrl());
  await expectPlainMessage(page, /found no usable GPU adapter/);
});

test('no navigator.gpu: the page says the browser lacks WebGPU', async ({ page }) => {
  await page.addInitScript(() => delete (Navigator.prototype as { gpu?: unknown }).gpu);
  await page.goto(demoUrl());
  await expectPlainMessage(page, /does not support WebGPU/);
});
