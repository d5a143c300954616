/**
 * napWhile (src/gpu/nap.ts) against a stand-in for Dawn's wait: a setImmediate loop that polls
 * until the work is done. Busy-polling, the loop takes a core; with napWhile the process sleeps
 * through most of the wait, and the wait still ends within a nap of the work.
 */
import { describe, expect, it } from 'vitest';
import { MAX_NAP_MS, canNap, napWhile } from '../../src/gpu/nap.js';

const after = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Wait `ms` for work while a Dawn-like loop polls once per event-loop turn: CPU and wall time of the wait. */
async function pollFor(ms: number, nap: boolean): Promise<{ cpuMs: number; wallMs: number }> {
  let done = false;
  const work = after(ms).then(() => (done = true));
  const poll = () => {
    if (!done) setImmediate(poll);
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  poll();
  await (nap ? napWhile(work) : work);
  const cpu = process.cpuUsage(cpu0);
  return { cpuMs: (cpu.user + cpu.system) / 1000, wallMs: performance.now() - t0 };
}

describe('napWhile', () => {
  it('naps in Node', () => {
    expect(canNap).toBe(true);
  });

  it('settles as the promise does: its value, or its error', async () => {
    expect(await napWhile(after(5).then(() => 42))).toBe(42);
    await expect(napWhile(after(5).then(() => Promise.reject(new Error('lost'))))).rejects.toThrow('lost');
  });

  it('takes a small share of the CPU time a busy-polled wait takes, and ends within a nap of the work', async () => {
    const busy = await pollFor(200, false);
    const napping = await pollFor(200, true);
    expect(busy.cpuMs).toBeGreaterThan(0.25 * busy.wallMs);
    expect(napping.cpuMs).toBeLessThan(0.3 * busy.cpuMs);
    // Timers fire up to a few ms late on a busy machine; a nap adds at most MAX_NAP_MS.
    expect(napping.wallMs).toBeLessThan(200 + MAX_NAP_MS + 20);
  });

  it('concurrent waits share one napping loop: with 100 under way, other callbacks wait at most a nap', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const waits = Array.from({ length: 100 }, () => napWhile(gate));
    await after(30); // naps have grown to MAX_NAP_MS
    // How long a timer due now waits for its turn, 10 times: a loop per wait would nap 100 times a turn.
    const lags: number[] = [];
    for (let i = 0; i < 10; i++) {
      const due = performance.now();
      await after(0);
      lags.push(performance.now() - due);
    }
    release();
    await Promise.all(waits);
    lags.sort((a, b) => a - b);
    expect(lags[5]).toBeLessThan(MAX_NAP_MS + 4);
  });
});
