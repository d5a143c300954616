/**
 * The generation options of `generate` and `generateBatch`: every option's type, checked before
 * anything is queued, and the infill template syntax. Ranges that depend on the model (length,
 * steps) are checked by the engine once the model is known.
 */
import { brief, fail } from './errors.js';
import { ORDERS, SCHEDULES } from './sampling/schedule.js';

/**
 * Temperatures the sampling kernel computes with: it scales f32 logits by 1/T. Below 1e-6 a
 * logit beyond 3.4e32 * T overflows f32 (and 1/T itself does below 2^-126), and sampling is
 * greedy to f32 precision anyway: use `greedy`. Above 1e6 every token is equally likely to f32
 * precision (and T itself overflows f32 above 3.4e38).
 */
export const MIN_TEMPERATURE = 1e-6;
export const MAX_TEMPERATURE = 1e6;
/** As messages and usage texts write it. */
export const TEMPERATURE_RANGE = `[${MIN_TEMPERATURE.toExponential()}, ${MAX_TEMPERATURE.toExponential()}]`;
/** The placeholder is repeated at every unknown position of every step event's text. */
export const MAX_PLACEHOLDER_LENGTH = 16;

/** undefined when `value` is fine; else "must be ..." (the message adds the option and the value) or a whole message. */
type Check = (value: unknown) => string | undefined;

/** A plain object (or a class instance), not an array, Map, Date...: those have no options in them. */
const isObject = (v: unknown): v is Record<string, unknown> => Object.prototype.toString.call(v) === '[object Object]';
const integer: Check = (v) => (Number.isInteger(v) ? undefined : 'must be an integer');
const number: Check = (v) => (typeof v === 'number' && !Number.isNaN(v) ? undefined : 'must be a number');
const string: Check = (v) => (typeof v === 'string' ? undefined : 'must be a string');
const oneOf =
  (what: string, values: readonly string[]): Check =>
  (v) =>
    typeof v === 'string' && values.includes(v) ? undefined : `unknown ${what} ${brief(v)}; use one of ${values.join(', ')}`;

/** What each option takes, one entry per option: the README's API list reads the same. */
const SEQUENCE_OPTIONS: Record<string, Check> = {
  prompt: string,
  infill: (v) => {
    if (typeof v === 'string') return undefined;
    if (!Array.isArray(v)) return 'must be a template string or an array of { position, text } segments';
    for (const [i, seg] of v.entries()) {
      if (!isObject(seg)) return `infill segment ${i} must be an object { position, text }, got ${typed(seg)}`;
      const extra = Object.keys(seg).find((k) => k !== 'position' && k !== 'text');
      if (extra !== undefined) return `infill segment ${i} has an unknown field ${brief(extra)} (a segment is { position, text })`;
      if (!Number.isInteger(seg.position) || (seg.position as number) < 1) return `infill segment ${i}: position must be an integer >= 1 (0 holds BOS), got ${typed(seg.position)}`;
      if (typeof seg.text !== 'string') return `infill segment ${i}: text must be a string, got ${typed(seg.text)}`;
    }
    return undefined;
  },
  seed: (v) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) < 2 ** 32 ? undefined : 'must be an integer in [0, 2^32)'),
};

const SHARED_OPTIONS: Record<string, Check> = {
  length: integer,
  steps: integer,
  order: oneOf('order', ORDERS),
  schedule: oneOf('schedule', SCHEDULES),
  temperature: number,
  topP: number,
  greedy: (v) => (typeof v === 'boolean' ? undefined : 'must be true or false'),
  signal: (v) => {
    const signal = v as Partial<AbortSignal> | null;
    return typeof signal === 'object' && signal !== null && typeof signal.aborted === 'boolean' && typeof signal.addEventListener === 'function' ? undefined : 'must be an AbortSignal';
  },
  placeholder: (v) => (typeof v === 'string' && v.length <= MAX_PLACEHOLDER_LENGTH ? undefined : `must be a string of at most ${MAX_PLACEHOLDER_LENGTH} characters`),
};

/** A value for an error message, with its type when the type is the mistake ("string \"16\""). */
function typed(v: unknown): string {
  const type = v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
  return type === 'number' ? String(v) : `${type} ${brief(v)}`; // String: JSON would write NaN as null
}

function checkFields(options: unknown, table: Record<string, Check>, where: string, extra: string[] = []): void {
  if (!isObject(options)) fail('option', `${where}options must be an object, got ${typed(options)}`);
  for (const [name, value] of Object.entries(options)) {
    if (extra.includes(name)) continue;
    const check = Object.hasOwn(table, name) ? table[name] : undefined;
    if (!check) fail('option', `${where}unknown option ${brief(name)}; the options are ${[...Object.keys(table), ...extra].join(', ')}`);
    if (value === undefined) continue;
    const problem = check(value);
    if (problem !== undefined) fail('option', problem.startsWith('must') ? `${where}${name} ${problem}, got ${typed(value)}` : `${where}${problem}`);
  }
}

/** The options of `generate`: an object of known options, each of its type (or undefined). */
export function checkGenerateOptionTypes(options: unknown): void {
  checkFields(options, { ...SEQUENCE_OPTIONS, ...SHARED_OPTIONS }, '');
}

/** The options of `generateBatch`: shared options and a non-empty array of sequence options. */
export function checkBatchOptionTypes(options: unknown): void {
  checkFields(options, SHARED_OPTIONS, '', ['sequences']);
  const { sequences } = options as { sequences?: unknown };
  if (!Array.isArray(sequences) || sequences.length === 0) fail('option', `sequences must be a non-empty array of { prompt | infill, seed }, got ${typed(sequences)}`);
  sequences.forEach((s, b) => checkFields(s, SEQUENCE_OPTIONS, `sequence ${b}: `));
}

/** A piece of an infill template: known text, or a hole of `tokens` tokens to generate. */
export type TemplatePart = { text: string } | { hole: number };

const HOLE_SYNTAX = 'a hole is {{n}} with n a whole number of tokens >= 1 (for text with "{{" in it, give infill segments [{ position, text }])';

/**
 * Split an infill template into text and holes. `{{n}}` is a hole of n >= 1 tokens; any other
 * `{{` is a mistake, reported with the template. A single space before a hole goes with the
 * hole: GPT-2 tokens carry their leading space, so "The {{3}} sat" reads "The" + 3 tokens +
 * " sat" rather than leaving a lone space token before the generated ones.
 */
export function parseInfillTemplate(template: string, where = ''): TemplatePart[] {
  const bad = (what: string): never => fail('option', `${where}infill template ${brief(template)}: ${what}; ${HOLE_SYNTAX}`);
  const parts: TemplatePart[] = [];
  const text = (t: string) => t && parts.push({ text: t });
  let at = 0;
  for (;;) {
    const open = template.indexOf('{{', at);
    if (open < 0) break;
    const close = template.indexOf('}}', open + 2);
    if (close < 0) bad(`"{{" at character ${open + 1} is never closed`);
    const inner = template.slice(open + 2, close);
    const tokens = /^\d{1,9}$/.test(inner) ? Number(inner) : NaN;
    if (!(tokens >= 1)) bad(`${brief(template.slice(open, close + 2), 24)} is not a hole`);
    text(template.slice(at, template[open - 1] === ' ' && open > at ? open - 1 : open));
    parts.push({ hole: tokens });
    at = close + 2;
  }
  text(template.slice(at));
  return parts;
}
