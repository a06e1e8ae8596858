import { ok, strictEqual, throws } from "node:assert/strict";
import client from "prom-client";
import { pollUntil } from "../tests/support.ts";
import {
  DelayHistogram,
  EVENT_LOOP_LAG_METRICS,
  registerEventLoopDelay,
  sampleEventLoopDelay,
} from "./event_loop_delay.ts";

const near = (actual: number, expected: number, relative: number, what: string) =>
  ok(
    Math.abs(actual - expected) <= relative * expected,
    `${what}: ${actual}, expected ${expected} within ${relative * 100}%`,
  );

Deno.test("delay histogram gives exact min, max, mean and stddev, and percentiles within a bucket", () => {
  const h = new DelayHistogram();
  // 1..1000 ms, once each: mean 500.5, population stddev sqrt((1000^2 - 1) / 12).
  for (let ms = 1; ms <= 1000; ms++) h.record(ms);
  strictEqual(h.count, 1000);
  strictEqual(h.min, 1);
  strictEqual(h.max, 1000);
  near(h.mean, 500.5, 1e-12, "mean");
  near(h.stddev, Math.sqrt((1000 ** 2 - 1) / 12), 1e-9, "stddev");
  // A percentile is its bucket's upper bound: at most 2^(1/16) (~4.4%) above the value.
  for (const [p, value] of [[50, 500], [90, 900], [99, 990]] as const) {
    const got = h.percentile(p);
    ok(got >= value && got <= value * 2 ** (1 / 16), `p${p}: ${got}, expected ${value}`);
  }
  strictEqual(h.percentile(100), 1000);
});

Deno.test("delay histogram keeps percentiles within what was recorded, and reset empties it", () => {
  const h = new DelayHistogram();
  for (let i = 0; i < 10; i++) h.record(3);
  strictEqual(h.percentile(50), 3); // the bucket's bound, clamped to max
  strictEqual(h.stddev, 0);
  h.record(0);
  strictEqual(h.min, 0);
  h.record(10 * 3_600_000); // ten hours: the last bucket
  strictEqual(h.percentile(100), 10 * 3_600_000);
  h.reset();
  strictEqual(h.count, 0);
  for (const value of [h.min, h.max, h.mean, h.stddev, h.percentile(99)]) strictEqual(value, 0);
});

Deno.test("delay histogram refuses negative delays and percentiles outside (0, 100]", () => {
  const h = new DelayHistogram();
  throws(() => h.record(-1), RangeError);
  throws(() => h.record(NaN), RangeError);
  throws(() => h.percentile(0), RangeError);
  throws(() => h.percentile(101), RangeError);
  throws(() => sampleEventLoopDelay(h, { resolutionMs: 0 }), RangeError);
});

/** Blocks this thread's loop for `ms` (what a long synchronous batch does). */
function blockLoop(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) { /* busy */ }
}

Deno.test("the sampler records how long the loop was blocked", async () => {
  const h = new DelayHistogram();
  const stop = sampleEventLoopDelay(h, { resolutionMs: 10 });
  try {
    blockLoop(120);
    await pollUntil("a sample after the block", () => Promise.resolve(h.count > 0 || undefined), {
      timeoutMs: 5000,
      intervalMs: 5,
    });
    ok(h.max >= 100, `max ${h.max} ms after a 120 ms block`);
  } finally {
    stop();
  }
});

Deno.test("a scrape reports the loop's delays since the previous one under prom-client's names", async () => {
  const registry = new client.Registry();
  const stop = registerEventLoopDelay(registry, { resolutionMs: 10 });
  const gauge = async (name: string) => {
    const metric = await registry.getSingleMetric(name)!.get();
    return metric.values[0]?.value ?? NaN;
  };
  try {
    // The sampler's first timer is due 10 ms after it was armed: a 120 ms block delays it.
    blockLoop(120);
    let max = 0;
    await pollUntil("the block on nodejs_eventloop_lag_max_seconds", async () => {
      await registry.metrics(); // a scrape: collects, then resets the histogram
      max = Math.max(max, await gauge("nodejs_eventloop_lag_max_seconds"));
      return max >= 0.1 || undefined;
    }, { timeoutMs: 5000, intervalMs: 5 });
    const text = await registry.metrics();
    for (const name of EVENT_LOOP_LAG_METRICS) {
      ok(new RegExp(`^${name} [0-9.e-]+$`, "m").test(text), `${name} on /metrics:\n${text}`);
    }
    // The next scrapes no longer hold the block: each one covers the time since the last.
    await pollUntil("a scrape without the block", async () => {
      await registry.metrics();
      return (await gauge("nodejs_eventloop_lag_max_seconds")) < 0.1 || undefined;
    }, { timeoutMs: 5000, intervalMs: 5 });
  } finally {
    stop();
  }
});
