/**
 * Dawn's Node binding (the `webgpu` package) resolves a pending mapAsync by running its event
 * processing again and again with setImmediate until the GPU is done: a busy loop on the
 * JavaScript thread for the whole wait. On a CPU adapter (SwiftShader, lavapipe) that thread
 * takes a core from the adapter's own threads, which meet at a barrier after every dispatch:
 * on 2 cores a PGM forward pass ran 1.5-2x as long while the loop spun
 * (`npx tsx bench/busy-wait.ts` measures it).
 *
 * `napWhile` keeps that loop from taking the core: while any `pending` waits, each turn of the
 * event loop also blocks the thread for a nap (Atomics.wait) of NAP_SHARE of the time waited
 * so far, at most MAX_NAP_MS. Dawn still polls once a turn, so a wait ends at most one nap
 * after its work: short waits (a real GPU) keep their latency, long ones leave the CPU free.
 * Concurrent waits (a step in flight, several models) share one napping loop, so the event
 * loop's other work is never held up by more than one nap per turn.
 */
export const NAP_SHARE = 0.05;
export const MAX_NAP_MS = 0.5;

/** Node (where WebGPU is Dawn's binding, and the main thread may block); not a browser, whose main thread may not. */
export const canNap =
  typeof process !== 'undefined' &&
  typeof process.versions?.node === 'string' &&
  typeof setImmediate === 'function' &&
  typeof SharedArrayBuffer === 'function';

const cell = canNap ? new Int32Array(new SharedArrayBuffer(4)) : undefined;
/** Waits under way, since when some have been, and whether the napping loop is scheduled. */
let waiting = 0;
let since = 0;
let looping = false;

function nap(): void {
  if (waiting === 0) {
    looping = false;
    return;
  }
  Atomics.wait(cell!, 0, 0, Math.min(MAX_NAP_MS, NAP_SHARE * (performance.now() - since)));
  setImmediate(nap);
}

/** `pending`, with the thread napping between the event loop's turns until it settles (Node; elsewhere `pending` as it is). */
export async function napWhile<T>(pending: Promise<T>): Promise<T> {
  if (!cell) return pending;
  if (waiting++ === 0) since = performance.now();
  if (!looping) {
    looping = true;
    setImmediate(nap);
  }
  try {
    return await pending;
  } finally {
    waiting--;
  }
}
