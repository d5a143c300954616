/**
 * Before the demo specs: write the random test models, build the demo (skip with
 * PGM_DEMO_NO_BUILD=1 when dist-demo/ is fresh) and serve dist-demo/ at / and the test
 * models at /test-models/. The specs read PGM_DEMO_URL and PGM_DEMO_MODELS.
 */
import { execFileSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestModels } from './make-test-models.js';
import { serveStatic } from './server.js';

export const SITE_DIR = 'dist-demo';

export default async function globalSetup(): Promise<() => Promise<void>> {
  const models = await mkdtemp(join(tmpdir(), 'pgm-demo-models-'));
  await makeTestModels(models);
  if (process.env.PGM_DEMO_NO_BUILD !== '1')
    execFileSync('npx', ['vite', 'build', '--logLevel', 'warn'], { stdio: 'inherit' });
  const server = await serveStatic({ '/': SITE_DIR, '/test-models/': models });
  process.env.PGM_DEMO_URL = server.url;
  process.env.PGM_DEMO_MODELS = models;
  return async () => {
    await server.close();
    await rm(models, { recursive: true, force: true });
  };
}
