import { fail } from '../errors.js';

/**
 * WGSL sources live as files under `shaders/`, one per operation. Variants are chosen by a
 * deliberately tiny preprocessor, resolved once per pipeline:
 *   #include "file.wgsl"      textual include, relative to the including file
 *   #if NAME / #if !NAME / #else / #endif   boolean switches (nestable)
 * Numeric defines become `const NAME = value;` declarations prepended to the module.
 */
export type Defines = Record<string, boolean | number>;

const textCache = new Map<string, Promise<string>>();

async function readText(url: URL): Promise<string> {
  if (url.protocol === 'file:') {
    const { readFile } = await import(/* @vite-ignore */ 'node:fs/promises');
    return readFile(url, 'utf8');
  }
  const res = await fetch(url);
  if (!res.ok) fail('io', `shader ${url.pathname}: HTTP ${res.status}`);
  return res.text();
}

function loadText(url: URL): Promise<string> {
  const key = url.href;
  let text = textCache.get(key);
  if (!text) {
    text = readText(url);
    textCache.set(key, text);
    text.catch(() => textCache.delete(key));
  }
  return text;
}

async function expand(url: URL, defines: Defines, depth: number): Promise<string> {
  if (depth > 8) fail('io', `shader ${url.pathname}: #include nested too deeply`);
  const lines = (await loadText(url)).split('\n');
  const out: string[] = [];
  const active: boolean[] = []; // one entry per open #if: is its current branch taken?
  const enabled = () => active.every(Boolean);
  for (const line of lines) {
    const directive = line.trim().match(/^#(\w+)\s*(.*)$/);
    if (!directive) {
      if (enabled()) out.push(line);
      continue;
    }
    const [, name, arg] = directive;
    if (name === 'if') {
      const negate = arg.startsWith('!');
      const value = Boolean(defines[negate ? arg.slice(1) : arg]);
      active.push(negate ? !value : value);
    } else if (name === 'else') {
      if (active.length === 0) fail('io', `shader ${url.pathname}: #else without #if`);
      active.push(!active.pop());
    } else if (name === 'endif') {
      if (active.length === 0) fail('io', `shader ${url.pathname}: #endif without #if`);
      active.pop();
    } else if (name === 'include') {
      if (enabled()) out.push(await expand(new URL(arg.replace(/"/g, ''), url), defines, depth + 1));
    } else {
      fail('io', `shader ${url.pathname}: unknown directive #${name}`);
    }
  }
  if (active.length !== 0) fail('io', `shader ${url.pathname}: unterminated #if`);
  return out.join('\n');
}

/** Load a WGSL file and resolve its preprocessor directives for one variant. */
export async function loadShader(url: URL, defines: Defines = {}): Promise<string> {
  const consts = Object.entries(defines)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .map(([name, value]) => `const ${name} = ${Number.isInteger(value) ? value : value.toExponential()};`);
  return [...consts, await expand(url, defines, 0)].join('\n');
}

/** A stable key for a variant, for pipeline caches. */
export const variantKey = (name: string, defines: Defines): string =>
  `${name}?${Object.keys(defines).sort().map((k) => `${k}=${defines[k]}`).join('&')}`;
