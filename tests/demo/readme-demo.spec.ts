/**
 * The README's demo command as a new user runs it: `npm run demo` (the Vite dev server, no
 * build), then the URL it prints, in Chromium. With no query parameters the page lists the
 * package's own manifest and loads the default model from the packaged files; a generation
 * with a fixed seed gives the CLI's text. The built site does the same from `/`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { expect, test, type Page } from '@playwright/test';

const SETTINGS = { prompt: 'It was', length: 24, steps: 4, seed: 5 };

function cliText(): Promise<string> {
  const args = [
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
  return promisify(execFile)('npx', args, { maxBuffer: 1 << 20 }).then(({ stdout }) => stdout.replace(/\n$/, ''));
}

/** `npm run demo`, resolved with the URL it prints. */
function startDemo(): { child: ChildProcess; url: Promise<string> } {
  // A process group of its own, so that the server under npm goes with it.
  const child = spawn('npm', ['run', 'demo', '--', '--open', 'false'], {
    env: { ...process.env, NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const url = new Promise<string>((resolve, reject) => {
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      const printed = out.match(/Local:\s+(http:\/\/\S+)/);
      if (printed) resolve(printed[1]);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => reject(new Error(`npm run demo exited with ${code}:\n${out}`)));
  });
  return { child, url };
}

async function generatesTheCliText(page: Page, url: string, expected: Promise<string>): Promise<void> {
  await page.goto(url);
  await expect(page).toHaveURL(/\/demo\/$/);
  await expect(page.locator('#model-info')).toContainText('pgm-small: PGM');
  await expect(page.locator('#generate')).toBeEnabled();
  await page.fill('#text', SETTINGS.prompt);
  await page.fill('#length', String(SETTINGS.length));
  await page.fill('#steps', String(SETTINGS.steps));
  await page.fill('#seed', String(SETTINGS.seed));
  await page.click('#generate');
  await expect(page.locator('.run')).toHaveClass(/finished/);
  expect(await page.locator('.run .text').textContent()).toBe(await expected);
}

test('npm run demo serves the demo at the URL it prints, on the packaged default model', async ({ page }) => {
  const expected = cliText();
  const { child, url } = startDemo();
  try {
    await generatesTheCliText(page, await url, expected);
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
  }
});

test('the built site sends / to the demo and loads the packaged default model', async ({ page }) => {
  await generatesTheCliText(page, `${process.env.PGM_DEMO_URL}/`, cliText());
});
