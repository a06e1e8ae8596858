/**
 * What a scrape's reading of the event loop's delay costs (`deno bench observability/`):
 * prom-client's read of Deno's native histogram (perf_hooks' monitorEventLoopDelay) against
 * this node's DelayHistogram, each after a second of a loop blocked now and then for 20-220
 * ms, as a busy node's is.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { DelayHistogram, sampleEventLoopDelay } from "./event_loop_delay.ts";

const native = monitorEventLoopDelay({ resolution: 10 });
native.enable();
const ours = new DelayHistogram();
const stop = sampleEventLoopDelay(ours, { resolutionMs: 10 });
const until = Date.now() + 1000;
for (let turn = 1; Date.now() < until; turn++) {
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (turn % 10 === 0) {
    const blockedUntil = performance.now() + 20 + (turn % 200);
    while (performance.now() < blockedUntil) { /* a long synchronous batch */ }
  }
}
native.disable();
stop();

/** What prom-client's eventLoopLag collector reads at each scrape (without the reset). */
function read(h: {
  min: number;
  max: number;
  mean: number;
  stddev: number;
  percentile(p: number): number;
}): number {
  return h.min + h.max + h.mean + h.stddev + h.percentile(50) + h.percentile(90) +
    h.percentile(99);
}

Deno.bench("a scrape's read: Deno's native histogram", { group: "scrape", baseline: true }, () => {
  read(native);
});
Deno.bench("a scrape's read: DelayHistogram", { group: "scrape" }, () => {
  read(ours);
});
