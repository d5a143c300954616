/**
 * Release GPU resources before a Node process ends. A device still open at exit is torn down
 * by Dawn's static destructors while its threads may still be running work, and the process
 * dies with SIGSEGV now and then. Every engine registers here; on each way out (the event loop
 * ends, `process.exit`, an uncaught error, SIGINT or SIGTERM) the live ones are disposed,
 * newest first, before the `webgpu` instance goes away with the process. In a browser this
 * does nothing: there is no `process`.
 */

interface Releasable {
  dispose(): void;
}

/** Weak: an engine its owner dropped is collected as usual, and then has nothing left to release. */
const live = new Set<WeakRef<Releasable>>();
let hooked = false;

/** Exit codes of the signals handled here when nobody else listens: 128 + the signal number, as a shell reports them. */
const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;

/** Dispose `resource` at process exit unless it is disposed first; call the returned function when it is. */
export function releaseAtExit(resource: Releasable): () => void {
  const ref = new WeakRef(resource);
  live.add(ref);
  hook();
  return () => void live.delete(ref);
}

/** Dispose every registered resource, newest first (an engine before the one it may share a device with). */
export function releaseAll(): void {
  const resources = [...live].reverse();
  live.clear();
  for (const ref of resources) {
    try {
      ref.deref()?.dispose();
    } catch {
      // On the way out: one failure must not keep the others alive.
    }
  }
}

function hook(): void {
  const proc = (globalThis as { process?: NodeJS.Process }).process;
  if (hooked || !proc?.versions?.node || typeof proc.on !== 'function') return;
  hooked = true;
  // 'exit' also runs after process.exit() and after an uncaught error has been reported.
  proc.on('exit', releaseAll);
  for (const [signal, code] of Object.entries(SIGNALS)) {
    proc.on(signal, () => {
      // Another listener owns this signal (and so the decision to exit); 'exit' still releases.
      if (proc.listenerCount(signal) > 1) return;
      releaseAll();
      proc.exit(code);
    });
  }
}
