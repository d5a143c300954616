import { fail } from '../errors.js';
import { WGSL, type ShaderFile } from './wgsl.js';

/**
 * WGSL sources live as files under `shaders/`, one per operation; scripts/bundle-assets.ts
 * resolves their `#include`s and carries them into the JavaScript (`src/gpu/wgsl.ts`), so
 * nothing is fetched at run time. Variants are chosen by a deliberately tiny preprocessor,
 * resolved once per pipeline:
 *   #if NAME / #if !NAME / #else / #endif   boolean switches (nestable)
 * Numeric defines become `const NAME = value;` declarations prepended to the module.
 */
export type Defines = Record<string, boolean | number>;

/** A shader's name (for labels and messages) and its source with includes resolved. */
export interface ShaderSource {
  name: string;
  code: string;
}

/** One of the engine's shaders (`shaders/<file>`). */
export const shader = (file: ShaderFile): ShaderSource => ({ name: file, code: WGSL[file] });

/** Resolve a shader's preprocessor switches for one variant. */
export function preprocess(shader: ShaderSource, defines: Defines = {}): string {
  const out: string[] = [];
  const active: boolean[] = []; // one entry per open #if: is its current branch taken?
  const enabled = () => active.every(Boolean);
  for (const line of shader.code.split('\n')) {
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
      if (active.length === 0) fail('webgpu', `shader ${shader.name}: #else without #if`);
      active.push(!active.pop());
    } else if (name === 'endif') {
      if (active.length === 0) fail('webgpu', `shader ${shader.name}: #endif without #if`);
      active.pop();
    } else {
      fail('webgpu', `shader ${shader.name}: unknown directive #${name}`);
    }
  }
  if (active.length !== 0) fail('webgpu', `shader ${shader.name}: unterminated #if`);
  const consts = Object.entries(defines)
    .filter((entry): entry is [string, number] => typeof entry[1] === 'number')
    .map(([name, value]) => `const ${name} = ${Number.isInteger(value) ? value : value.toExponential()};`);
  return [...consts, ...out].join('\n');
}

/** A stable key for a variant, for pipeline caches. */
export const variantKey = (name: string, defines: Defines): string =>
  `${name}?${Object.keys(defines).sort().map((k) => `${k}=${defines[k]}`).join('&')}`;
