/**
 * Dawn's Node binding (the `webgpu` package) resolves a pending mapAsync by running its event
 * processing again and again with setImmediate until the GPU is done: a busy loop on the
 * JavaScript thread for the whole wait. On a CPU adapter (SwiftShader, lavapipe) that loop
 * takes a core from the adapter's own threads: on 2 cores a forward pass ran 1.4-2x as long
 * while it spun (`npx tsx bench/readback-pacing.ts` measures it).
 *
 * A pacer sleeps through most of the expected wait before it asks. Per kind of submit (`key`)
 * it learns how long submits of each size of work (`work`: rows, say) took from submit to
 * readback, and expects a submit to take what the largest work not above its own took, so a
 * growing clean set is never overslept. It sleeps through SLEEP_FRACTION of that, then asks;
 * the rest of the wait spins as before. A wait that was over as soon as it was asked says only
 * that the sleep was too long (the work was lighter, or a timer fired late on a busy machine):
 * that work's expectation drops to OVERSLEPT of the sleep. Waits expected under MIN_PACED_MS
 * are not paced, so short submits on a real GPU keep their latency.
 */
export const SLEEP_FRACTION = 0.85;
export const OVERSLEPT = 0.8;
export const MIN_PACED_MS = 2;
/** A mapAsync that resolves within this long of being asked found the work done. */
const READY_MS = 0.5;
/** Weight of the newest wait in a smoothed expectation (one slow outlier moves it half way). */
const NEWEST = 0.5;

export interface PaceKey {
  key: string;
  /** The submit's size of work; more work is expected to take at least as long. */
  work: number;
}

export class ReadbackPacer {
  /** key -> work -> ms expected from submit to readback. */
  private readonly expected = new Map<string, Map<number, number>>();
  /** Waits so far; those that slept first; those whose sleep outlasted the work. */
  readonly counts = { waits: 0, slept: 0, overslept: 0 };

  /** Waits under way: a submit made while another waits queues behind it, and is learned apart. */
  private active = 0;

  /** What a submit of `key` and `work` is expected to take, in ms: what the largest work not above it took (undefined: none yet). */
  expectedMs({ key, work }: PaceKey, behind = false): number | undefined {
    let best: [number, number] | undefined;
    for (const entry of this.expected.get(slot(key, behind)) ?? []) if (entry[0] <= work && (!best || entry[0] > best[0])) best = entry;
    return best?.[1];
  }

  /** `ask` (the mapAsync) after sleeping through most of what such a submit is expected to take, counted from `submitted` (performance.now()). */
  async wait<T>(pace: PaceKey, submitted: number, ask: () => Promise<T>): Promise<T> {
    const behind = this.active > 0;
    this.active++;
    try {
      return await this.paced(pace, behind, submitted, ask);
    } finally {
      this.active--;
    }
  }

  private async paced<T>(pace: PaceKey, behind: boolean, submitted: number, ask: () => Promise<T>): Promise<T> {
    const expected = this.expectedMs(pace, behind);
    const sleep = expected !== undefined && expected >= MIN_PACED_MS ? SLEEP_FRACTION * expected - (performance.now() - submitted) : 0;
    if (sleep >= 1) {
      this.counts.slept++;
      await new Promise((resolve) => setTimeout(resolve, sleep));
    }
    const asked = performance.now();
    const result = await ask();
    const done = performance.now();
    const overslept = sleep >= 1 && done - asked < READY_MS;
    this.counts.waits++;
    if (overslept) this.counts.overslept++;
    let byWork = this.expected.get(slot(pace.key, behind));
    if (!byWork) this.expected.set(slot(pace.key, behind), (byWork = new Map()));
    const own = byWork.get(pace.work);
    const took = done - submitted;
    const next = overslept ? OVERSLEPT * (asked - submitted) : own === undefined ? took : own + NEWEST * (took - own);
    byWork.set(pace.work, next);
    return result;
  }
}

const slot = (key: string, behind: boolean) => (behind ? `${key} behind another` : key);
