import { deepStrictEqual, ok, strictEqual, throws } from "node:assert/strict";
import { HotKeys } from "./hot_keys.ts";

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

Deno.test("hot keys ranks keys by their event counts, hottest first", () => {
  const c = clock();
  const hot = new HotKeys({ capacity: 10, halfLifeMs: 60_000, now: c.now });
  hot.record("instrument", "A", 50);
  hot.record("instrument", "B", 10);
  hot.record("curve", "A", 30);
  deepStrictEqual(hot.top(3).map((h) => `${h.kind}:${h.key}`), [
    "instrument:A",
    "curve:A",
    "instrument:B",
  ]);
  deepStrictEqual(hot.top(1).map((h) => h.key), ["A"]);
  strictEqual(hot.top(3)[0]!.error_per_s, 0);
});

Deno.test("hot keys estimates a steady rate in events per second", () => {
  const c = clock();
  const halfLifeMs = 10_000;
  const hot = new HotKeys({ capacity: 10, halfLifeMs, now: c.now });
  // 200 events/s for 10 half-lives: the decayed estimate converges to the rate.
  for (let i = 0; i < 1000; i++) {
    c.advance(100);
    hot.record("instrument", "steady", 20);
  }
  const rate = hot.top(1)[0]!.rate_per_s;
  ok(Math.abs(rate - 200) / 200 < 0.01, `rate ${rate}`);
});

Deno.test("hot keys forgets a burst: counts halve every half-life without events", () => {
  const c = clock();
  const hot = new HotKeys({ capacity: 10, halfLifeMs: 1000, now: c.now });
  hot.record("instrument", "burst", 1000);
  const before = hot.top(1)[0]!.rate_per_s;
  c.advance(1000);
  const after = hot.top(1)[0]!.rate_per_s;
  ok(Math.abs(after / before - 0.5) < 1e-9, `${after} / ${before}`);
  // A key with a lower but recent rate overtakes the old burst.
  c.advance(10_000);
  hot.record("instrument", "recent", 5);
  strictEqual(hot.top(1)[0]!.key, "recent");
});

Deno.test("hot keys keeps at most capacity keys and still finds a heavy hitter among many", () => {
  const c = clock();
  const hot = new HotKeys({ capacity: 50, halfLifeMs: 60_000, now: c.now });
  for (let i = 0; i < 20_000; i++) {
    c.advance(1);
    hot.record("instrument", `cold-${i}`, 1);
    if (i % 10 === 0) hot.record("instrument", "heavy", 1);
    if (i % 25 === 0) hot.record("instrument", "warm", 1);
  }
  strictEqual(hot.size, 50);
  deepStrictEqual(hot.top(2).map((h) => h.key), ["heavy", "warm"]);
  // The error bound is reported and never exceeds the estimate.
  for (const h of hot.top(50)) ok(h.error_per_s <= h.rate_per_s);
});

Deno.test("hot keys rescales its weights over long runs without overflow or reordering", () => {
  const c = clock();
  const hot = new HotKeys({ capacity: 5, halfLifeMs: 10, now: c.now });
  for (let i = 0; i < 5000; i++) {
    c.advance(10);
    hot.record("instrument", "a", 2);
    hot.record("instrument", "b", 1);
  }
  const top = hot.top(2);
  deepStrictEqual(top.map((h) => h.key), ["a", "b"]);
  for (const h of top) ok(Number.isFinite(h.rate_per_s) && h.rate_per_s > 0);
  ok(Math.abs(top[0]!.rate_per_s / top[1]!.rate_per_s - 2) < 1e-6);
});

Deno.test("hot keys ignores a clock stepping back and non-positive counts", () => {
  const c = clock();
  const hot = new HotKeys({ capacity: 5, halfLifeMs: 1000, now: c.now });
  hot.record("instrument", "x", 10);
  c.advance(-5000);
  hot.record("instrument", "y", 0);
  hot.record("instrument", "y", -3);
  deepStrictEqual(hot.top(5).map((h) => h.key), ["x"]);
});

Deno.test("hot keys rejects bad options and limits", () => {
  throws(() => new HotKeys({ capacity: 0 }), RangeError);
  throws(() => new HotKeys({ halfLifeMs: 0 }), RangeError);
  throws(() => new HotKeys().top(0), RangeError);
});
