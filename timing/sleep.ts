import { setImmediate } from "node:timers";

/** Resolves after `ms`, or early when the signal aborts (callers then check what stopped them). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal?.aborted) done();
    else signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Lets pending I/O, timers and other tasks run, then resolves. Not `sleep(0)`: a timer set
 * from a timer callback is clamped to >= 4 ms after a few nested ones, which would idle the
 * loop at every yield; and awaiting a settled promise only runs microtasks.
 */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
