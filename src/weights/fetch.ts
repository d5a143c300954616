/**
 * Bounded HTTP reads of model files and manifests. Every body goes through one loop that stops
 * one byte past its limit (whatever the server announces or sends, compressed or not: the
 * bytes counted are the decoded ones), fails when the transfer stalls, honours an AbortSignal,
 * and turns every failure into a PgmError that names the URL and the cause.
 */
import { PgmError, fail } from '../errors.js';

/** Default of `stallTimeout`: milliseconds a download may go without STALL_BYTES arriving. */
export const DEFAULT_STALL_TIMEOUT = 30_000;
/** What counts as progress for the stall timeout (a server that trickles a byte a second stalls). */
export const STALL_BYTES = 16 * 1024;
/** setTimeout's largest delay; a longer stall timeout would fire at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface BodyOptions {
  /** Reading stops after `maxBytes + 1` bytes: a larger body comes back longer than `maxBytes`, never whole. */
  maxBytes?: number;
  /** Called (it throws) when the server announces more than `maxBytes` (Content-Length), before the body is read. */
  tooLarge?(announced: number): never;
  /** Bytes of the body read so far, as they arrive. */
  onBytes?(bytes: number): void;
  signal?: AbortSignal;
  /** Fail when less than STALL_BYTES arrive in this many milliseconds (the headers included); Infinity: never. */
  stallTimeout?: number;
}

/** The PgmError of an aborted `what` (a load, a conversion): the signal's reason when it is one. */
export function abortedError(signal: AbortSignal, what = 'loading'): PgmError {
  const reason = signal.reason as unknown;
  if (reason instanceof PgmError) return reason;
  const why = reason instanceof Error && reason.name !== 'AbortError' ? ` (${reason.message})` : '';
  return new PgmError('aborted', `${what} was aborted${why}`, { cause: reason });
}

/** Throw the aborted error when `signal` has fired. */
export function checkAborted(signal: AbortSignal | undefined, what?: string): void {
  if (signal?.aborted) throw abortedError(signal, what);
}

/**
 * Why a fetch failed, in words: Node's fetch (undici) hides the cause under "fetch failed" or
 * "terminated"; browsers say only "Failed to fetch" (a network error, or CORS: they do not tell).
 */
export function describeFetchFailure(e: unknown): string {
  const chain: Error[] = [];
  for (let x = e; x instanceof Error && chain.length < 8; x = (x as Error).cause) chain.push(x);
  const codes = chain.map((x) => (x as NodeJS.ErrnoException).code);
  const deepest = chain[chain.length - 1]?.message ?? String(e);
  if (chain.some((x) => /redirect count exceeded/i.test(x.message))) return 'redirect loop: more than 20 redirects';
  if (chain.some((x) => /scheme must be a? ?HTTP\(S\)/i.test(x.message)))
    return 'redirected to a URL that is not http(s), which is never followed';
  if (codes.includes('ECONNREFUSED')) return 'connection refused';
  if (codes.includes('ENOTFOUND') || codes.includes('EAI_AGAIN')) return `host not found (${deepest})`;
  if (codes.includes('ECONNRESET') || codes.includes('UND_ERR_SOCKET') || codes.includes('EPIPE'))
    return `connection reset by the server (${deepest})`;
  if (/^Failed to fetch$|^Load failed$|NetworkError/i.test(deepest))
    return `${deepest}: the server is unreachable, refused the connection or this page's origin (CORS), or redirected in a loop`;
  return deepest;
}

/** A one-line static server that sends Access-Control-Allow-Origin (Python's http.server, which has no flag for it); the port follows. */
export const CORS_SERVER_PY = `python3 -c "import http.server as s, sys; s.SimpleHTTPRequestHandler.end_headers = lambda h: (h.send_header('Access-Control-Allow-Origin', '*'), s.BaseHTTPRequestHandler.end_headers(h)); s.test(s.SimpleHTTPRequestHandler, port=int(sys.argv[1]))"`;

/**
 * A page's failed fetch of another origin, told apart: browsers say "Failed to fetch" both for a
 * server that is down and for one that answers without CORS headers. A no-cors HEAD succeeds
 * (with an opaque answer) only when the server answered: then it was CORS, and the error says
 * how to serve the files with the header. Undefined when it was not (or outside a page).
 */
async function corsFailure(
  url: string,
  fetchFn: typeof fetch,
  signal: AbortSignal,
  e: unknown,
): Promise<PgmError | undefined> {
  const page = globalThis.location?.origin;
  if (!page || page === 'null' || !(e instanceof TypeError) || signal.aborted) return undefined;
  const target = new URL(url);
  if (target.origin === page || !/^https?:$/.test(target.protocol)) return undefined;
  try {
    await fetchFn(url, { method: 'HEAD', mode: 'no-cors', signal });
  } catch {
    return undefined;
  }
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  return new PgmError(
    'io',
    `${url}: blocked by CORS: the server at ${target.origin} answers, but without an Access-Control-Allow-Origin header that lets this page (${page}) read its files. ` +
      `Serve the model folder with that header, e.g. in the folder: npx http-server --cors -p ${port}, or: ${CORS_SERVER_PY} ${port}`,
    { cause: e },
  );
}

/**
 * GET `url` and read its body under `o`'s limits. `hint` ends the message of a file that
 * cannot be had ("check the model URL ..."). A body cut short (a reset, a Content-Length
 * longer than what arrives) is an `io` error saying how much arrived.
 */
export async function fetchBody(
  url: string,
  fetchFn: typeof fetch,
  hint: string,
  o: BodyOptions = {},
): Promise<Uint8Array> {
  checkAborted(o.signal);
  const stall = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stall.signal]) : stall.signal;
  const timeout = o.stallTimeout ?? DEFAULT_STALL_TIMEOUT;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    if (timeout < Infinity) timer = setTimeout(() => stall.abort(), Math.min(timeout, MAX_TIMER_MS));
  };
  let received = 0;
  let announced: number | undefined;
  const failure = (e: unknown, stage: string): PgmError => {
    if (e instanceof PgmError) return e;
    if (o.signal?.aborted) return abortedError(o.signal);
    const sofar = announced === undefined ? `${received} bytes` : `${received} of ${announced} bytes`;
    if (stall.signal.aborted) {
      return new PgmError(
        'io',
        `${url}: timed out: less than ${STALL_BYTES / 1024} KiB arrived in ${timeout / 1000} s (${stage}, ${sofar} so far); the server stalled or is too slow (stallTimeout)`,
        { cause: e },
      );
    }
    if (stage === 'waiting for the headers')
      return new PgmError('io', `${url}: fetch failed (${describeFetchFailure(e)}); ${hint}`, { cause: e });
    return new PgmError('io', `${url}: the download broke off after ${sofar} (${describeFetchFailure(e)}); try again`, {
      cause: e,
    });
  };
  arm();
  try {
    let res: Response;
    try {
      res = await fetchFn(url, { signal });
    } catch (e) {
      throw (await corsFailure(url, fetchFn, signal, e)) ?? failure(e, 'waiting for the headers');
    }
    if (!res.ok) fail('io', `${url}: HTTP ${res.status} ${res.statusText}; ${hint}`);
    // A dev server's fallback page for a file it does not have: say so, not "invalid JSON".
    if (res.headers.get('content-type')?.toLowerCase().startsWith('text/html'))
      fail('io', `${url}: the server answered with an HTML page, not the model file; ${hint}`);
    const length = Number(res.headers.get('content-length') ?? NaN);
    const encoded = (res.headers.get('content-encoding') ?? 'identity').toLowerCase() !== 'identity';
    if (Number.isSafeInteger(length) && length >= 0 && !encoded) announced = length;
    const limit = o.maxBytes === undefined ? Infinity : o.maxBytes + 1;
    if (announced !== undefined && announced >= limit) {
      await res.body?.cancel().catch(() => undefined);
      o.tooLarge?.(announced);
    }
    if (!res.body) return new Uint8Array(0);
    const reader = res.body.getReader();
    // Sized once when the length is known; else grown by doubling from 64 KiB, never past the limit.
    let bytes = new Uint8Array(Math.min(limit, announced ?? 2 ** 16));
    let sinceArm = 0;
    arm();
    try {
      while (received < limit) {
        const { done, value } = await reader.read();
        if (done) break;
        const part = value.subarray(0, Math.min(value.length, limit - received));
        if (received + part.length > bytes.length) {
          const grown = new Uint8Array(Math.min(limit, Math.max(2 * bytes.length, received + part.length)));
          grown.set(bytes.subarray(0, received));
          bytes = grown;
        }
        bytes.set(part, received);
        received += part.length;
        sinceArm += part.length;
        if (sinceArm >= STALL_BYTES) {
          sinceArm = 0;
          arm();
        }
        o.onBytes?.(received);
      }
    } catch (e) {
      throw failure(e, 'reading the body');
    }
    if (received >= limit) await reader.cancel().catch(() => undefined);
    return bytes.subarray(0, received);
  } finally {
    clearTimeout(timer);
  }
}
