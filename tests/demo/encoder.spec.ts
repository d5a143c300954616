/**
 * The demo's encoder control on the random test models: the choice and its refresh reach the
 * engine (the demo writes the CLI's text for each), the race runs the MDLM, the PGM exact, the
 * PGM incremental and the PGM adaptive one after the other and reports their speeds, and an
 * MDLM pick turns the control off and ignores it.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, test, type Page } from '@playwright/test';
import { GENERATION_OPTIONS } from '../../src/index.js';
import { demoUrl } from './browser.js';
import { TEST_MODELS } from './make-test-models.js';

const SETTINGS = { prompt: 'Once upon a time', length: 32, steps: 8, seed: 3 };

/** The CLI's text for SETTINGS on the test PGM with these encoder flags. */
function cliText(...encoderFlags: string[]): Promise<string> {
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
    'random',
    ...encoderFlags,
  );
  return promisify(execFile)('npx', args, { maxBuffer: 1 << 20 }).then(({ stdout }) => stdout.replace(/\n$/, ''));
}

async function open(page: Page): Promise<string[]> {
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(demoUrl());
  await expect(page.locator('#model-info')).toContainText(`${TEST_MODELS.pgm}: PGM`);
  await expect(page.locator('#generate')).toBeEnabled();
  await page.fill('#text', SETTINGS.prompt);
  await page.fill('#length', String(SETTINGS.length));
  await page.fill('#steps', String(SETTINGS.steps));
  await page.fill('#seed', String(SETTINGS.seed));
  await page.selectOption('#order', 'random');
  return errors;
}

/** Generate; a run the engine refused fails here with the page's message. */
async function generatedText(page: Page): Promise<string | null> {
  await page.click('#generate');
  await expect(page.locator('.run .counter')).toHaveText(/^(done|failed|stopped)/);
  expect(await page.locator('#problem').textContent()).toBe('');
  await expect(page.locator('.run')).toHaveClass(/finished/);
  return page.locator('.run .text').textContent();
}

/** The race's lanes, as the summary lists them: seconds, tokens/s, ms per step, rows encoded. */
async function laneSpeeds(
  page: Page,
): Promise<{ name: string; seconds: number; tokensPerSecond: number; msPerStep: number; rows: number }[]> {
  const lines = await page.locator('[data-testid=lane-speed]').allTextContents();
  return lines.map((line) => {
    const m = line.match(
      /^(.+): (\d+\.\d\d) s, (\d+\.\d) tokens\/s, (\d+\.\d) ms per step, (\d+) (?:encoder|network) rows$/,
    );
    expect(m, line).not.toBeNull();
    return {
      name: m![1],
      seconds: Number(m![2]),
      tokensPerSecond: Number(m![3]),
      msPerStep: Number(m![4]),
      rows: Number(m![5]),
    };
  });
}

const SPEEDUPS =
  /^PGM exact is \d+\.\d\d× (faster|slower) than MDLM; PGM incremental is \d+\.\d\d× (faster|slower) than MDLM and \d+\.\d\d× (faster|slower) than exact; PGM adaptive is \d+\.\d\d× (faster|slower) than exact$/;

test('the encoder control and its refresh reach the engine: the demo writes the CLI text of each', async ({ page }) => {
  const [exact, incremental, refresh2, delayed, adaptive] = [
    cliText(),
    cliText('--encoder', 'incremental'),
    cliText('--encoder', 'incremental', '--refresh', '2'),
    cliText('--encoder', 'delayed'),
    cliText('--encoder', 'adaptive'),
  ];
  const errors = await open(page);
  const option = GENERATION_OPTIONS.find((o) => o.name === 'encoder')!;
  await expect(page.locator('#encoder')).toHaveAttribute('title', `${option.doc}; ${option.takes} (default: exact)`);
  await expect(page.locator('#refresh')).toHaveAttribute('title', /^with encoder incremental, delayed or adaptive: /);
  await expect(page.locator('#encoder')).toHaveValue('exact');
  await expect(page.locator('#refresh')).toBeDisabled();
  // Different texts, so each comparison below tells the settings apart (refresh 3 draws what
  // adaptive at its default staleness draws on this model and seed).
  expect(new Set([await exact, await incremental, await refresh2, await delayed, await adaptive]).size).toBe(5);

  expect(await generatedText(page)).toBe(await exact);
  await page.selectOption('#encoder', 'incremental');
  await expect(page.locator('#refresh')).toBeEnabled();
  expect(await generatedText(page)).toBe(await incremental);
  await expect(page.locator('.run h2')).toHaveText(`${TEST_MODELS.pgm} · PGM incremental (refresh never)`);
  await page.fill('#refresh', '2');
  expect(await generatedText(page)).toBe(await refresh2);
  await expect(page.locator('.run h2')).toHaveText(`${TEST_MODELS.pgm} · PGM incremental (refresh every 2 steps)`);
  await page.selectOption('#encoder', 'delayed');
  await page.fill('#refresh', '');
  expect(await generatedText(page)).toBe(await delayed);
  await expect(page.locator('.run h2')).toHaveText(`${TEST_MODELS.pgm} · PGM delayed (refresh never)`);
  await page.selectOption('#encoder', 'adaptive');
  expect(await generatedText(page)).toBe(await adaptive);
  await expect(page.locator('.run h2')).toHaveText(`${TEST_MODELS.pgm} · PGM adaptive (refresh never)`);
  expect(errors).toEqual([]);
});

test('the race runs MDLM, PGM exact, PGM incremental with the refresh setting and PGM adaptive, and reports their speeds', async ({
  page,
}) => {
  const [exact, refresh3, adaptive] = [
    cliText(),
    cliText('--encoder', 'incremental', '--refresh', '3'),
    cliText('--encoder', 'adaptive'),
  ];
  const errors = await open(page);
  await page.selectOption('#encoder', 'incremental');
  await page.fill('#refresh', '3');
  await page.click('#race');
  await expect(page.locator('[data-testid=speedup] strong')).toHaveText(SPEEDUPS);
  const lanes = page.locator('.run');
  await expect(lanes.locator('h2')).toHaveText([
    `${TEST_MODELS.mdlm} · MDLM`,
    `${TEST_MODELS.pgm} · PGM exact`,
    `${TEST_MODELS.pgm} · PGM incremental (refresh every 3 steps)`,
    `${TEST_MODELS.pgm} · PGM adaptive (refresh never)`,
  ]);
  await expect(page.locator('.run.finished')).toHaveCount(4);
  for (const counter of await lanes.locator('.counter').all())
    await expect(counter).toHaveText(/^done: 8 steps in \d+\.\d\d s · \d+\.\d tokens\/s · \d+\.\d ms\/step$/);
  expect(await lanes.nth(1).locator('.text').textContent()).toBe(await exact);
  expect(await lanes.nth(2).locator('.text').textContent()).toBe(await refresh3);
  expect(await lanes.nth(3).locator('.text').textContent()).toBe(await adaptive);

  const speeds = await laneSpeeds(page);
  expect(speeds.map((s) => s.name)).toEqual([
    'MDLM',
    'PGM exact',
    'PGM incremental (refresh every 3 steps)',
    'PGM adaptive (refresh never)',
  ]);
  for (const s of speeds) {
    expect(s.tokensPerSecond).toBeGreaterThan(0);
    expect(s.msPerStep).toBeGreaterThan(0);
  }
  // Each token is encoded once, plus a full re-encode at steps 0, 3 and 6: fewer rows than re-encoding every step.
  expect(speeds[2].rows).toBeLessThan(speeds[1].rows);
  // Each token once, and the stale ones again: between never refreshing and the exact encoder.
  expect(speeds[3].rows).toBeLessThan(speeds[1].rows);
  expect(errors).toEqual([]);
});

test('an MDLM pick turns the encoder control off and ignores it; its race runs the PGM twin both ways', async ({
  page,
}) => {
  const errors = await open(page);
  await page.selectOption('#encoder', 'incremental');
  await page.fill('#refresh', '2');
  await page.selectOption('#model', TEST_MODELS.mdlm);
  await expect(page.locator('#model-info')).toContainText(`${TEST_MODELS.mdlm}: MDLM`);
  await expect(page.locator('#encoder')).toBeDisabled();
  await expect(page.locator('#refresh')).toBeDisabled();
  await expect(page.locator('#encoder-note')).toContainText('not for an MDLM');

  // The engine rejects encoder incremental on an MDLM: this run finishing means it was not sent.
  await generatedText(page);
  await expect(page.locator('.run h2')).toHaveText(`${TEST_MODELS.mdlm} · MDLM`);

  await page.click('#race');
  await expect(page.locator('[data-testid=speedup] strong')).toHaveText(SPEEDUPS);
  await expect(page.locator('.run h2')).toHaveText([
    `${TEST_MODELS.mdlm} · MDLM`,
    `${TEST_MODELS.pgm} · PGM exact`,
    `${TEST_MODELS.pgm} · PGM incremental (refresh never)`,
    `${TEST_MODELS.pgm} · PGM adaptive (refresh never)`,
  ]);
  expect(await page.locator('[data-testid=lane-speed]').count()).toBe(4);

  await page.selectOption('#model', TEST_MODELS.pgm);
  await expect(page.locator('#model-info')).toContainText(`${TEST_MODELS.pgm}: PGM`);
  await expect(page.locator('#encoder')).toBeEnabled();
  await expect(page.locator('#refresh')).toHaveValue('2');
  await expect(page.locator('#encoder-note')).toBeEmpty();
  expect(errors).toEqual([]);
});
