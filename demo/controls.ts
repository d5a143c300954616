/**
 * The controls: their settings read and checked (an empty number field is said to be empty),
 * what is enabled while a load or a generation runs, the encoder's controls (a PGM's choice),
 * and Stop.
 */
import { GENERATION_OPTIONS, PgmError, type EncoderMode, type GenerateOptions, type Order } from '../src/index.js';
import { $, input } from './dom.js';
import { models, type ModelInfo } from './engines.js';
import { twinOf } from './picker.js';

let busy = false;
/** Aborted by Stop: the running load or generation. */
let stopping: AbortController | undefined;

/** A load or a generation runs. */
export const isBusy = (): boolean => busy;

/** The signal of the running load or generation, which Stop aborts (aborted: Stop was pressed since it began). */
export const stopSignal = (): AbortSignal => stopping!.signal;

/** Stop: abort the running load or generation. */
export function stop(): void {
  stopping?.abort();
}

/** A load or generation begins (Stop aborts it) or ends: the controls follow. */
export function setBusy(value: boolean): void {
  busy = value;
  stopping = value ? new AbortController() : undefined;
  const ready = models.has('main');
  $<HTMLButtonElement>('generate').disabled = busy || !ready;
  $<HTMLButtonElement>('stop').disabled = !busy;
  for (const id of ['model', 'load-url', 'clear-cache', 'open-folder', 'open-files'])
    $<HTMLButtonElement>(id).disabled = busy;
  const main = models.get('main');
  const twin = main?.source.kind === 'manifest' ? twinOf(main.source.id) : undefined;
  $<HTMLButtonElement>('race').disabled = busy || !twin;
  $('twin-note').textContent = twin
    ? `twin: ${twin.id} (${twin.arch.toUpperCase()})`
    : main
      ? 'no twin of the other architecture in the manifest'
      : '';
  showEncoderControls();
}

/** The encoder is a PGM's choice: with an MDLM picked both controls are off, and say so. */
export function showEncoderControls(): void {
  const arch = models.get('main')?.info.arch;
  const encoder = $<HTMLSelectElement>('encoder');
  encoder.disabled = arch !== 'pgm';
  input('refresh').disabled = arch !== 'pgm' || encoder.value === 'exact';
  $('encoder-note').textContent =
    arch === 'mdlm'
      ? 'not for an MDLM, which runs every position at every step: ignored (a race runs its PGM twin with both encoders)'
      : '';
}

/** The length and top-p fields follow a model just loaded: at most its length, its nucleus as the placeholder. */
export function fitSettings(info: ModelInfo): void {
  const length = input('length');
  length.max = String(info.length);
  if (!(Number(length.value) <= info.length)) length.value = String(Math.min(128, info.length));
  input('top-p').placeholder = String(info.pNucleus);
}

/** The encoder the controls ask for; nothing where they are off (an MDLM, or refresh with the exact encoder). */
export function encoderSettings(): { encoder?: EncoderMode; refresh?: number } {
  const encoder = $<HTMLSelectElement>('encoder');
  const refresh = input('refresh');
  if (encoder.disabled) return {};
  return {
    encoder: encoder.value as EncoderMode,
    refresh: refresh.disabled || refresh.value.trim() === '' ? undefined : Number(refresh.value),
  };
}

/** A number field that must hold a number: an empty one is said to be empty, not read as 0. */
function requiredNumber(id: string, label: string): number {
  const text = input(id).value.trim();
  if (text === '') throw new PgmError('option', `${label} is empty: give a number`);
  return Number(text);
}

/** The generation options of the controls. */
export type GenerationSettings = GenerateOptions & { length: number };

export function readSettings(): GenerationSettings {
  const text = input('text').value;
  const infill = $<HTMLSelectElement>('mode').value === 'infill';
  const topP = input('top-p').value.trim();
  return {
    ...(infill ? { infill: text } : { prompt: text || undefined }),
    length: requiredNumber('length', 'Length'),
    steps: requiredNumber('steps', 'Steps'),
    order: $<HTMLSelectElement>('order').value as Order,
    temperature: requiredNumber('temperature', 'Temperature'),
    topP: topP === '' ? undefined : Number(topP),
    seed: requiredNumber('seed', 'Seed'),
  };
}

const examples = { prompt: 'It was a dark and stormy night', infill: 'The {{4}} sat on the mat.{{12}} Then{{16}}' };

/**
 * Wire the settings controls: the mode switches the text's example, the encoder its refresh,
 * Stop stops; and each explains itself with its option's entry of the API's table: what it
 * does, takes and defaults to.
 */
export function setUpControls(): void {
  $<HTMLSelectElement>('mode').onchange = (e) => {
    const mode = (e.target as HTMLSelectElement).value as keyof typeof examples;
    $('text-label').textContent = mode === 'infill' ? 'Template ({{n}} = n tokens to write)' : 'Prompt';
    input('text').value = examples[mode];
  };
  $('encoder').onchange = showEncoderControls;
  $('stop').onclick = stop;
  const controls: Record<string, string> = {
    text: 'prompt',
    length: 'length',
    steps: 'steps',
    order: 'order',
    temperature: 'temperature',
    'top-p': 'topP',
    seed: 'seed',
    encoder: 'encoder',
    refresh: 'refresh',
  };
  for (const [id, name] of Object.entries(controls)) {
    const option = GENERATION_OPTIONS.find((o) => o.name === name);
    if (option) $(id).title = `${option.doc}; ${option.takes} (default: ${option.default})`;
  }
}
