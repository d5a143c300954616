import { fail } from '../errors.js';
import { WGSL, type ShaderFile } from './wgsl.js';

/**
 * WGSL sources live as files under `shaders/` (one or more per operation); scripts/bundle-assets.ts
 * resolves their `#include`s and carries them into the JavaScript (`src/gpu/wgsl.ts`), so
 * nothing is fetched at run time. Variants are chosen by a deliberately tiny preprocessor,
 * resolved once per pipeline:
 *   #if NAME / #if !NAME / #else / #endif   boolean switches (nestable)
 *   #for i COUNT ... #endfor                 the lines between, COUNT times, with the word `i`
 *                                            as 0u, 1u, ... (COUNT: a number or numeric define;
 *                                            not nested): unrolled where a compiler would not
 * Numeric defines become `const NAME = value;` declarations prepended to the module, after
 * its `enable` directives (which WGSL wants before any declaration).
 */
export type Defines = Record<string, boolean | number>;

/** A shader's name (for labels and messages) and its source with includes resolved. */
export interface ShaderSource {
  name: string;
  code: string;
}

/** One of the engine's shaders (`shaders/<file>`). */
export const shader = (file: ShaderFile): ShaderSource => ({ name: file, code: WGSL[file] });

/** Expand the `#for` blocks of a shader's lines. */
function unroll(shader: ShaderSource, lines: string[], defines: Defines): string[] {
  const out: string[] = [];
  for (let at = 0; at < lines.length; at++) {
    const loop = lines[at].trim().match(/^#for\s+(\w+)\s+(\w+)$/);
    if (!loop) {
      out.push(lines[at]);
      continue;
    }
    const [, name, countName] = loop;
    const count = /^\d+$/.test(countName) ? Number(countName) : defines[countName];
    if (typeof count !== 'number')
      fail(
        'webgpu',
        `shader ${shader.name}: #for ${name} ${countName}: ${countName} is not a number or numeric define`,
      );
    const end = lines.findIndex((line, i) => i > at && /^\s*#(for|endfor)\b/.test(line));
    if (end < 0 || !/^\s*#endfor\b/.test(lines[end]))
      fail('webgpu', `shader ${shader.name}: #for without #endfor (or nested #for)`);
    const word = new RegExp(`\\b${name}\\b`, 'g');
    for (let i = 0; i < count; i++) out.push(...lines.slice(at + 1, end).map((line) => line.replace(word, `${i}u`)));
    at = end;
  }
  return out;
}

/** Resolve a shader's preprocessor switches for one variant. */
export function preprocess(shader: ShaderSource, defines: Defines = {}): string {
  const out: string[] = [];
  const active: boolean[] = []; // one entry per open #if: is its current branch taken?
  const enabled = () => active.every(Boolean);
  for (const line of unroll(shader, shader.code.split('\n'), defines)) {
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
  const directive = (line: string) => /^\s*enable\s/.test(line);
  return [...out.filter(directive), ...consts, ...out.filter((line) => !directive(line))].join('\n');
}

/** How a kernel uses a buffer binding: `var<uniform>`, `var<storage, read>`, `var<storage, read_write>`. */
export type BindingKind = 'uniform' | 'read' | 'write';

/** A binding of group 0: its WGSL variable name and kind. */
export interface Binding {
  name: string;
  kind: BindingKind;
}

const KINDS: Record<string, BindingKind> = {
  uniform: 'uniform',
  'storage,read': 'read',
  'storage,read_write': 'write',
};

/**
 * Bindings 0..n-1 of group 0, as the (preprocessed) WGSL declares them: the shader is the one
 * declaration of a kernel's interface; the bind-group layout is read off it and the wrappers
 * bind buffers by these names.
 */
export function bindings(shader: ShaderSource, code: string): Binding[] {
  const found: Binding[] = [];
  for (const [, group, binding, space, name] of code.matchAll(
    /@group\((\d+)\)\s*@binding\((\d+)\)\s*var<([^>]+)>\s*(\w+)/g,
  )) {
    const kind = KINDS[space.replace(/\s/g, '')];
    if (group !== '0' || !kind)
      fail(
        'webgpu',
        `shader ${shader.name}: binding ${binding} (${name}) of group ${group} is var<${space}>; kernels use group 0 and uniform or storage buffers`,
      );
    if (found[Number(binding)]) fail('webgpu', `shader ${shader.name}: binding ${binding} is declared twice`);
    if (found.some((b) => b?.name === name)) fail('webgpu', `shader ${shader.name}: two bindings are named ${name}`);
    found[Number(binding)] = { name, kind };
  }
  const missing = Array.from(found, (b, i) => (b ? -1 : i)).filter((i) => i >= 0);
  if (missing.length)
    fail(
      'webgpu',
      `shader ${shader.name}: bindings ${missing.join(', ')} are not declared; bindings are numbered 0..n-1`,
    );
  return found;
}

/** A field of a uniform struct; every field is a 4-byte scalar, so field i sits at byte 4i. */
export interface Field {
  name: string;
  type: 'u32' | 'i32' | 'f32';
}

/** The fields of `struct <name>` in the (preprocessed) WGSL; a PgmError if it is missing or holds a non-scalar. */
export function structFields(shader: ShaderSource, code: string, name: string): Field[] {
  const body = code.match(new RegExp(`\\bstruct\\s+${name}\\s*\\{([^}]*)\\}`))?.[1];
  if (body === undefined) fail('webgpu', `shader ${shader.name} declares no struct ${name}`);
  return body
    .split('\n')
    .map((line) => line.replace(/\/\/.*/, '').trim())
    .filter(Boolean)
    .map((line) => {
      const field = line.match(/^(\w+)\s*:\s*(u32|i32|f32)\s*,?$/);
      if (!field)
        fail('webgpu', `shader ${shader.name}: struct ${name} field '${line}' is not a u32, i32 or f32 scalar`);
      return { name: field[1], type: field[2] as Field['type'] };
    });
}

/**
 * The value of a module-scope `const NAME = a * b * ...;` (factors: integer literals, or other such
 * constants, numeric defines included): geometry the host reads rather than writes again.
 */
export function constant(shader: ShaderSource, code: string, name: string): number {
  const expr = code.match(new RegExp(`^\\s*const\\s+${name}\\s*(?::\\s*\\w+\\s*)?=\\s*([^;]+);`, 'm'))?.[1];
  if (expr === undefined) fail('webgpu', `shader ${shader.name} declares no const ${name}`);
  return product(shader, code, expr, name);
}

function product(shader: ShaderSource, code: string, expr: string, what: string): number {
  return expr.split('*').reduce((value, factor) => {
    const f = factor.trim();
    if (/^\d+u?$/.test(f)) return value * parseInt(f, 10);
    if (/^\w+$/.test(f)) return value * constant(shader, code, f);
    return fail('webgpu', `shader ${shader.name}: ${what} = ${expr.trim()} is not a product of integers and constants`);
  }, 1);
}

/** `@workgroup_size(x, y, z)` of the entry point, its terms resolved as `constant` does. */
export function workgroupSize(shader: ShaderSource, code: string): [number, number, number] {
  const args = code.match(/@workgroup_size\(([^)]*)\)/)?.[1];
  if (args === undefined) fail('webgpu', `shader ${shader.name} has no @workgroup_size`);
  const [x, y = 1, z = 1] = args
    .split(',')
    .filter((a) => a.trim())
    .map((a) => product(shader, code, a, 'workgroup_size'));
  return [x, y, z];
}

/** A stable key for a variant, for pipeline caches. */
export const variantKey = (name: string, defines: Defines): string =>
  `${name}?${Object.keys(defines)
    .sort()
    .map((k) => `${k}=${defines[k]}`)
    .join('&')}`;
