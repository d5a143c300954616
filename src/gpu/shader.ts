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

/** How a kernel uses a buffer binding: `var<uniform>`, `var<storage, read>`, `var<storage, read_write>`. */
export type BindingKind = 'uniform' | 'read' | 'write';

const KINDS: Record<string, BindingKind> = { uniform: 'uniform', 'storage,read': 'read', 'storage,read_write': 'write' };

/**
 * The kinds of bindings 0..n-1 of group 0, as the (preprocessed) WGSL declares them: the
 * shader is the one declaration of a kernel's interface, the bind-group layout is read off it.
 */
export function bindingKinds(shader: ShaderSource, code: string): BindingKind[] {
  const kinds: BindingKind[] = [];
  for (const [, group, binding, space] of code.matchAll(/@group\((\d+)\)\s*@binding\((\d+)\)\s*var<([^>]+)>/g)) {
    const kind = KINDS[space.replace(/\s/g, '')];
    if (group !== '0' || !kind) fail('webgpu', `shader ${shader.name}: binding ${binding} of group ${group} is var<${space}>; kernels use group 0 and uniform or storage buffers`);
    if (kinds[Number(binding)]) fail('webgpu', `shader ${shader.name}: binding ${binding} is declared twice`);
    kinds[Number(binding)] = kind;
  }
  const missing = Array.from(kinds, (k, i) => (k ? -1 : i)).filter((i) => i >= 0);
  if (missing.length) fail('webgpu', `shader ${shader.name}: bindings ${missing.join(', ')} are not declared; bindings are numbered 0..n-1`);
  return kinds;
}

/** A stable key for a variant, for pipeline caches. */
export const variantKey = (name: string, defines: Defines): string =>
  `${name}?${Object.keys(defines).sort().map((k) => `${k}=${defines[k]}`).join('&')}`;
