/**
 * Every path the repository cites exists, so a file renamed or removed leaves no stale
 * reference behind. Checked: in Markdown, links (relative to the file), paths that start with
 * a top-level folder of the repository anywhere in the text (`src/options.ts`, a command's
 * `scripts/fuzz.ts`), and backticked paths that start with a folder beside the file
 * (`data/README.md` in training/); in the comments of source files, paths that start with a
 * top-level folder, and in src/ also those relative to src/ (`tuning/tuning.ts`). A cited
 * `.js` module may be its `.ts` source. Not checked: URLs and absolute paths, placeholders
 * (`<name>`, `*`, `$VAR`, `{a,b}`, `...`), and what .gitignore ignores (build outputs such as
 * `dist/index.js`, generated corpora).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** .gitignore's patterns as a test of a repository-relative path (the path or a folder above it ignored). */
function gitignored(lines: readonly string[]): (path: string) => boolean {
  const patterns = lines.map((line) => {
    const body = line.replace(/^\/|\/$/g, '');
    const glob = body
      .split('/')
      .map((seg) =>
        seg === '**'
          ? '(?:[^/]+/)*'
          : `${seg
              .replace(/[.+^$()|[\]\\]/g, '\\$&')
              .replace(/\*/g, '[^/]*')
              .replace(/\?/g, '[^/]')}/`,
      )
      .join('');
    // A pattern with a slash before its end is anchored at the root; one without names a file or folder at any depth.
    return new RegExp(`^${body.includes('/') ? '' : '(?:[^/]+/)*'}${glob}`);
  });
  return (path) => path === '.git' || path.startsWith('.git/') || patterns.some((p) => p.test(`${path}/`));
}

const ignoreLines = readFileSync(join(ROOT, '.gitignore'), 'utf8')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const ignored = gitignored(ignoreLines);

function files(dir = ''): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) => {
    const path = dir ? `${dir}/${e.name}` : e.name;
    if (ignored(path)) return [];
    return e.isDirectory() ? files(path) : [path];
  });
}

const TOP = readdirSync(ROOT, { withFileTypes: true })
  .filter((e) => e.isDirectory() && !ignored(e.name))
  .map((e) => e.name);
const SRC = readdirSync(join(ROOT, 'src'), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);
const escape = (s: string) => s.replace(/[.]/g, '\\.');
/** A path starting with one of `folders`, not inside a URL or a longer path; it ends on a word character or a slash. */
const pathsUnder = (folders: readonly string[]) =>
  new RegExp(`(?<![\\w./@:-])((?:${folders.map(escape).join('|')})/[\\w./-]*[\\w/])(?![\\w./-]*[<*])`, 'g');
const REPO_PATH = pathsUnder(TOP);
const SRC_PATH = pathsUnder(SRC);
const CODE = /\.(ts|js|mjs|cjs|jsx|wgsl|py|sh)$/;
/** Comments of a source file: `//` and `#` lines, and block comments. */
const COMMENT = /\/\/.*$|\/\*[\s\S]*?\*\/|^\s*#.*$/gm;

/** A cited path, and the folder it is relative to. */
interface Citation {
  cited: string;
  base: string;
}

/** The paths `file` (repository-relative) cites in `text`. */
export function citations(file: string, text: string): Citation[] {
  const here = dirname(file);
  const out: Citation[] = [];
  const all = (re: RegExp, body: string, base: string) => {
    for (const m of body.matchAll(re)) out.push({ cited: m[1], base });
  };
  if (file.endsWith('.md')) {
    all(/\]\(([^)\s]+)\)/g, text, here);
    all(REPO_PATH, text, '.');
    for (const m of text.matchAll(/`([^`\s/]+\/[^`\s]*)`/g)) {
      const first = m[1].split('/')[0];
      if (!TOP.includes(first) && first !== '.' && first !== '..' && existsSync(join(ROOT, here, first)))
        out.push({ cited: m[1], base: here });
    }
  } else if (CODE.test(file)) {
    const comments = [...text.matchAll(COMMENT)].map((m) => m[0]).join('\n');
    all(REPO_PATH, comments, '.');
    if (file.startsWith('src/')) all(SRC_PATH, comments, 'src');
  }
  return out.filter(({ cited }) => !/^[a-z][a-z0-9+.-]*:|^[#/]|[<>*$[\]{}]|\.\.\./.test(cited));
}

/** A citation's target, repository-relative, or undefined when it exists or is ignored. */
function missing({ cited, base }: Citation): string | undefined {
  const path = posix.normalize(posix.join(base, cited.replace(/[#?].*$/, '')).replace(/\/$/, ''));
  if (ignored(path) || existsSync(join(ROOT, path))) return undefined;
  if (path.endsWith('.js') && existsSync(join(ROOT, path.replace(/\.js$/, '.ts')))) return undefined;
  return path;
}

describe('cited paths', () => {
  it('are found in Markdown and code comments, URLs, placeholders and ignored outputs left out', () => {
    const md = [
      'See [the model](model.md), [a section](#one-step), [npm](https://www.npmjs.com/package/webgpu) and `src/options.ts`.',
      'Run `npx tsx scripts/fuzz.ts`; it writes `training/data/out/L256` and `dist/index.js`; `models/<name>/config.json`, `src/*.ts`, bench/results/run-<adapter>.json.',
      'Stale: `docs/gone.md`, and (`src/kernels/none.ts`).',
    ].join('\n');
    expect(citations('docs/x.md', md).map(missing).filter(Boolean)).toEqual(['docs/gone.md', 'src/kernels/none.ts']);
    const ts = [
      '/** The tuner (tuning/tuning.ts, src/gpu/timing.ts); see docs/none.md. */',
      "import { x } from '../docs/ignored-in-code.js';",
      '// https://example.com/src/none.ts and kernels/none.ts',
    ].join('\n');
    expect(citations('src/gpu/x.ts', ts).map(missing).filter(Boolean)).toEqual(['docs/none.md', 'src/kernels/none.ts']);
  });

  it('exist: every repository-relative path cited in Markdown and in code comments', () => {
    const stale: string[] = [];
    let count = 0;
    // This file's own examples are stale on purpose.
    for (const file of files().filter(
      (f) => (f.endsWith('.md') || CODE.test(f)) && f !== 'tests/assets/paths.test.ts',
    )) {
      for (const c of citations(file, readFileSync(join(ROOT, file), 'utf8'))) {
        count++;
        const path = missing(c);
        if (path) stale.push(`${file}: ${c.cited}${path === c.cited ? '' : ` (${path})`}`);
      }
    }
    expect(stale).toEqual([]);
    expect(count, 'paths checked').toBeGreaterThan(300);
  });
});
