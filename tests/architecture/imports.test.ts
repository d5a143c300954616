/**
 * The layering of src/ (docs/architecture.md): no module is part of an import cycle, type-only
 * imports included, and each folder imports only the layers below it. The demo uses the public
 * API only.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', '..', 'src');

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? modules(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** Every relative import and re-export of each module (static, dynamic and type-only), as paths under src/. */
const relativeImports = (file: string): string[] =>
  [...readFileSync(file, 'utf8').matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g)].map(
    (m) => resolve(dirname(file), m[1].replace(/\.js$/, '.ts')),
  );

const graph = new Map(
  modules(SRC).map(
    (file) => [relative(SRC, file), relativeImports(file).map((target) => relative(SRC, target))] as const,
  ),
);

/** The strongly connected components with more than one module (or a self-import): Tarjan. */
function cycles(): string[][] {
  let index = 0;
  const order = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (v: string) => {
    order.set(v, index);
    low.set(v, index++);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!order.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, order.get(w)!));
    }
    if (low.get(v) === order.get(v)) {
      const component: string[] = [];
      let w: string;
      do component.push((w = stack.pop()!));
      while (w !== v);
      if (component.length > 1 || graph.get(v)!.includes(v)) found.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!order.has(v)) visit(v);
  return found;
}

/**
 * Layers, lowest first: a module imports its own folder and lower layers only; folders of one
 * layer do not import each other.
 */
const LAYER: Record<string, number> = {
  errors: 0,
  gpu: 1,
  weights: 1,
  text: 1,
  kernels: 2,
  tuning: 3,
  model: 4,
  convert: 5,
  reference: 5,
  sampling: 5,
  api: 6,
  cli: 7,
};
/** errors.ts is the bottom layer; the other top-level modules (engine, options, index, node) are the API. */
const layerOf = (module: string): string =>
  module === 'errors.ts' ? 'errors' : module.includes('/') ? module.split('/')[0] : 'api';

describe('src/ imports', () => {
  it('resolve to modules of src/', () => {
    for (const [from, to] of graph)
      for (const target of to) expect(graph.has(target), `${from} imports ${target}`).toBe(true);
  });

  it('each belong to a layer (a new folder gets one here and in docs/architecture.md)', () => {
    expect([...new Set([...graph.keys()].map(layerOf))].filter((l) => !(l in LAYER))).toEqual([]);
  });

  it('go down the layers only', () => {
    const upward: string[] = [];
    for (const [from, to] of graph) {
      for (const target of to) {
        const [a, b] = [layerOf(from), layerOf(target)];
        if (a !== b && LAYER[b] >= LAYER[a]) upward.push(`${from} (${a}) -> ${target} (${b})`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('form no cycle, type-only imports included', () => {
    expect(cycles()).toEqual([]);
  });
});

describe('demo/ imports', () => {
  it('reach src/ through the public entries only (src/index.ts, and src/worker.ts: pgm-webgpu/worker)', () => {
    const DEMO = join(SRC, '..', 'demo');
    const inSrc = modules(DEMO).flatMap((file) =>
      relativeImports(file)
        .filter((t) => !relative(SRC, t).startsWith('..'))
        .map((t) => `${relative(DEMO, file)} -> ${relative(SRC, t)}`),
    );
    expect(inSrc.length).toBeGreaterThan(0);
    expect(inSrc.filter((i) => !/-> (index|worker)\.ts$/.test(i))).toEqual([]);
  });
});
