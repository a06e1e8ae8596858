import assert from "node:assert/strict";
import { type SourceReport, SourceWatermarks } from "./source_watermarks.ts";

const IDLE_MS = 1000;

function tracker() {
  const changes: SourceReport[] = [];
  const watermarks = new SourceWatermarks({
    idleAfterMs: IDLE_MS,
    onIdleChange: (c) => changes.push(c),
  });
  return { watermarks, changes };
}

Deno.test("source watermarks report nothing for an active source without acknowledged ticks", () => {
  const { watermarks } = tracker();
  watermarks.assign([0, 1], 0);
  assert.deepEqual(watermarks.report(IDLE_MS - 1), []);
});

Deno.test("source watermarks take the greatest acknowledged event time, never moving back", () => {
  const { watermarks } = tracker();
  watermarks.assign([0, 1], 0);
  watermarks.acknowledged(0, [500, 900, 700], 10);
  watermarks.acknowledged(0, [600], 20); // older than the watermark: it stays
  watermarks.acknowledged(1, [], 20); // a batch with no Silver ticks moves nothing
  assert.deepEqual(watermarks.report(30), [{ partition: 0, watermarkMs: 900, idle: false }]);
});

Deno.test("source watermarks turn an empty source idle idleAfterMs after its assignment", () => {
  const { watermarks, changes } = tracker();
  watermarks.assign([2], 100);
  assert.deepEqual(watermarks.report(100 + IDLE_MS - 1), []);
  const idle = { partition: 2, watermarkMs: null, idle: true };
  assert.deepEqual(watermarks.report(100 + IDLE_MS), [idle]);
  assert.deepEqual(changes, [idle]);
  watermarks.report(100 + 5 * IDLE_MS);
  assert.equal(changes.length, 1); // one transition, not one per report
});

Deno.test("source watermarks turn a quiet source idle with its last watermark and active on new ticks", () => {
  const { watermarks, changes } = tracker();
  watermarks.assign([0], 0);
  watermarks.acknowledged(0, [42], 500);
  assert.deepEqual(watermarks.report(500 + IDLE_MS - 1), [
    { partition: 0, watermarkMs: 42, idle: false },
  ]);
  assert.deepEqual(watermarks.report(500 + IDLE_MS), [
    { partition: 0, watermarkMs: 42, idle: true },
  ]);
  watermarks.acknowledged(0, [50], 3000);
  assert.deepEqual(watermarks.report(3001), [{ partition: 0, watermarkMs: 50, idle: false }]);
  assert.deepEqual(changes.map((c) => c.idle), [true, false]);
});

Deno.test("source watermarks never turn a source idle while a batch of it is in hand", () => {
  const { watermarks } = tracker();
  watermarks.assign([0], 0);
  watermarks.acknowledged(0, [42], 0);
  watermarks.batchStarted(0);
  assert.deepEqual(watermarks.report(10 * IDLE_MS), [
    { partition: 0, watermarkMs: 42, idle: false },
  ]);
  watermarks.batchDone(0);
  assert.equal(watermarks.report(10 * IDLE_MS)[0]?.idle, true);
});

Deno.test("source watermarks keep kept partitions, start new ones empty and drop lost ones", () => {
  const { watermarks } = tracker();
  watermarks.assign([0, 1], 0);
  watermarks.acknowledged(0, [10], 0);
  watermarks.acknowledged(1, [20], 0);
  watermarks.assign([1, 2], 5);
  watermarks.acknowledged(0, [99], 6); // lost: ignored
  assert.deepEqual(watermarks.owned(), [1, 2]);
  assert.deepEqual(watermarks.report(6), [{ partition: 1, watermarkMs: 20, idle: false }]);
  watermarks.assign([], 7);
  assert.deepEqual(watermarks.report(10 * IDLE_MS), []);
});

Deno.test("source watermarks refuse a non-positive idle time", () => {
  assert.throws(() => new SourceWatermarks({ idleAfterMs: 0 }), RangeError);
});
