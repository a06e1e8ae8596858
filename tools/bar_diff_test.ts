import assert from "node:assert/strict";
import { diffBarValues, floatsClose } from "./bar_diff.ts";

const bar = {
  open: 10,
  high: 12,
  low: -5,
  close: -5,
  volume: 7,
  vwap: -0.2857142857142857,
  count: 4,
};

Deno.test("floatsClose accepts a relative 1e-9 difference and rejects a larger one", () => {
  assert.ok(floatsClose(100, 100 + 1e-8));
  assert.ok(!floatsClose(100, 100 + 1e-6));
  assert.ok(floatsClose(0, 0));
  assert.ok(floatsClose(NaN, NaN));
  assert.ok(!floatsClose(NaN, 1));
  // Cancellation: a vwap near zero is compared on the bar's price scale.
  assert.ok(!floatsClose(1e-12, 2e-12));
  assert.ok(floatsClose(1e-12, 2e-12, 1e-9, 50));
});

Deno.test("diffBarValues lists each differing field and compares count exactly", () => {
  assert.deepEqual(diffBarValues(bar, { ...bar, vwap: bar.vwap * (1 + 1e-12) }), []);
  assert.deepEqual(diffBarValues(bar, { ...bar, close: 999, count: 5 }), [
    { field: "close", expected: -5, actual: 999 },
    { field: "count", expected: 4, actual: 5 },
  ]);
});
