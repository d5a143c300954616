/**
 * The demo is a consumer of the library (docs/architecture.md): it reaches src/ only through
 * the package's entry points, src/index.ts and src/worker.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, it } from 'vitest';

const DEMO = join(import.meta.dirname, '..', '..', 'demo');

it('demo/ imports src/ only through its entry points', () => {
  const reached = readdirSync(DEMO)
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => [...readFileSync(join(DEMO, f), 'utf8').matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.\.\/src\/[^'"]+)['"]/g)].map((m) => `${f}: ${m[1]}`));
  expect(reached.length).toBeGreaterThan(0);
  expect(reached.filter((r) => !/: \.\.\/src\/(index|worker)\.js$/.test(r))).toEqual([]);
});
