/**
 * Every failure the engine reports on purpose is a PgmError with a stable `code`,
 * so callers can branch on it; `message` is one line that names the file or
 * option and says what to do.
 */
export type PgmErrorCode =
  | 'checkpoint' // a .ckpt file that is not a readable torch/Lightning checkpoint
  | 'unsafe-pickle' // a pickle that reaches for a global outside the allowlist
  | 'architecture' // a checkpoint or config the engine cannot run
  | 'safetensors' // a malformed safetensors file
  | 'integrity' // size or sha256 mismatch against the manifest
  | 'config' // a malformed config.json / weights-manifest.json
  | 'shape' // inputs the model cannot take
  | 'option' // invalid generation options
  | 'call-order' // GpuModel driven out of its step order (writes, setLengths, startStep)
  | 'webgpu' // no adapter, missing feature or limit
  | 'device-lost'
  | 'disposed' // the engine was disposed (during or before the generation)
  | 'non-finite' // the model produced NaN or infinite logits (broken or overflowing weights)
  | 'aborted'
  | 'io'
  | 'worker'; // the engine's worker could not be started, or does not run pgm-webgpu/worker

export class PgmError extends Error {
  readonly code: PgmErrorCode;
  constructor(code: PgmErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PgmError';
    this.code = code;
  }
}

export function fail(code: PgmErrorCode, message: string): never {
  throw new PgmError(code, message);
}

/**
 * A value from an untrusted file or caller, as JSON for an error message: at most `max`
 * characters, and never a throw of its own (deeply nested, cyclic or bigint values).
 */
export function brief(value: unknown, max = 80): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch {
    text = Array.isArray(value) ? '[...]' : typeof value === 'bigint' ? `${value}` : '{...}';
  }
  text ??= String(value);
  return text.length > max ? `${text.slice(0, max)}...` : text;
}

/** Text from an untrusted source (a file's bytes in a parser's message) on one line: control characters escaped, at most `max` characters. */
export function printable(text: string, max = 160): string {
  const clean = text.replace(
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return clean.length > max ? `${clean.slice(0, max)}...` : clean;
}
