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
 * Lets other tasks and timers run, then resolves: for the event path's slices. Not socket
 * I/O: Deno (2.9) runs immediates without polling sockets, so a read waits until no task of
 * the thread yields this way any more. Not a timer, which lets sockets in but idles the loop
 * (see yieldToIo); and awaiting a settled promise only runs microtasks.
 */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Lets pending socket I/O run too, then resolves: for work beside the event path (a flush
 * plan) that must not hold back fetch responses and store replies for as long as it runs. A
 * timer makes the runtime wait in its I/O poll: ~1-2 ms when nothing else is ready, which is
 * why the event path's slices do not yield this way (every 10 ms, it cost a backlog a sixth
 * of its rate).
 */
export function yieldToIo(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
