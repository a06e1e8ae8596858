import assert from "node:assert/strict";
import { ClockState } from "../messages/partition_state.ts";
import { WatermarkRecord } from "../messages/watermark.ts";
import {
  applyWatermark,
  currentClock,
  emptyClockState,
  type EventClock,
  UNDEFINED_CLOCK,
} from "./event_clock.ts";

const TICKS = "ingestion.market.ticks.v1";
const CURVES = "ingestion.market.curves.v1";
/** 2027-01-15T10:00:00Z. */
const T0 = Date.UTC(2027, 0, 15, 10, 0, 0);

interface MarkOptions {
  topic?: string;
  idle?: boolean;
  wall?: number;
  partitions?: number;
}

/** A watermark record as the normalizer writes it (validated by the record's schema). */
function mark(partition: number, watermarkMs: number | null, o: MarkOptions = {}): WatermarkRecord {
  return WatermarkRecord.parse({
    type: "watermark",
    source_topic: o.topic ?? TICKS,
    source_partition: partition,
    watermark_ms: watermarkMs,
    idle: o.idle ?? false,
    wall_ms: o.wall ?? T0 + 3_600_000,
    source_partitions: o.partitions ?? 2,
  });
}

/** Applies the records in order; returns the clock after each one. */
function applyAll(state: ClockState, records: readonly WatermarkRecord[]): EventClock[] {
  return records.map((r) => {
    applyWatermark(state, r);
    return currentClock(state);
  });
}

function clock(clockMs: number | null, quietMs: number | null = null): EventClock {
  return { clockMs, quietMs };
}

Deno.test("event clock is undefined before any watermark record", () => {
  const state = emptyClockState();
  assert.deepEqual(currentClock(state), UNDEFINED_CLOCK);
  assert.deepEqual(currentClock(state), clock(null));
});

Deno.test("event clock stays undefined until every source partition has reported", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, T0 + 500, { partitions: 3 }),
    mark(0, T0 + 900, { partitions: 3 }),
    mark(2, T0 + 700, { partitions: 3 }),
    // Partition 1 was never heard from: nothing is late or final yet.
    mark(1, T0 + 100, { partitions: 3 }),
  ]);
  assert.deepEqual(clocks, [clock(null), clock(null), clock(null), clock(T0 + 100)]);
  assert.equal(state.clock_ms, T0 + 100);
});

Deno.test("event clock is the minimum over active sources and the greatest such minimum so far", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, T0 + 100),
    mark(1, T0 + 200), // min(100, 200)
    mark(0, T0 + 300), // min(300, 200)
    mark(1, T0 + 250), // min(300, 250)
    mark(1, T0 + 400), // min(300, 400)
  ]);
  assert.deepEqual(clocks.map((c) => c.clockMs), [null, T0 + 100, T0 + 200, T0 + 250, T0 + 300]);
  assert.ok(clocks.every((c) => c.quietMs === null));
});

Deno.test("event clock never moves back when a source's watermark goes down", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, T0 + 1_000),
    mark(1, T0 + 2_000),
    // A new normalizer took partition 0 over and restarted its watermark lower.
    mark(0, T0 + 10),
    mark(1, T0 + 5_000),
    mark(0, T0 + 1_500),
    mark(0, T0 + 3_000),
  ]);
  assert.deepEqual(clocks.map((c) => c.clockMs), [
    null,
    T0 + 1_000,
    T0 + 1_000,
    T0 + 1_000,
    T0 + 1_500,
    T0 + 3_000,
  ]);
});

Deno.test("event clock never moves back when a lower source joins", () => {
  const state = emptyClockState();
  applyAll(state, [mark(0, T0 + 1_000, { partitions: 1 })]);
  assert.equal(currentClock(state).clockMs, T0 + 1_000);
  // The topic grows to 2 partitions; the new one reports a lower watermark.
  const clocks = applyAll(state, [
    mark(1, T0 + 10, { partitions: 2 }),
    mark(0, T0 + 2_000, { partitions: 2 }),
    mark(1, T0 + 1_200, { partitions: 2 }),
  ]);
  assert.deepEqual(clocks.map((c) => c.clockMs), [T0 + 1_000, T0 + 1_000, T0 + 1_200]);
});

Deno.test("event clock excludes idle sources from the minimum", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, T0 + 100),
    mark(1, T0 + 900),
    // Partition 0 goes idle: it no longer holds the clock back.
    mark(0, T0 + 100, { idle: true, wall: T0 + 50_000 }),
    mark(1, T0 + 1_200),
  ]);
  assert.deepEqual(clocks, [clock(null), clock(T0 + 100), clock(T0 + 900), clock(T0 + 1_200)]);
});

Deno.test("an idle source that becomes active again counts in the minimum but cannot move the clock back", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, T0 + 100),
    mark(1, T0 + 900),
    mark(0, T0 + 100, { idle: true }),
    mark(0, T0 + 150), // active again, far behind partition 1
    mark(1, T0 + 2_000),
    mark(0, T0 + 1_000),
    mark(0, T0 + 3_000),
  ]);
  assert.deepEqual(clocks.map((c) => c.clockMs), [
    null,
    T0 + 100,
    T0 + 900,
    T0 + 900,
    T0 + 900,
    T0 + 1_000,
    T0 + 2_000,
  ]);
});

Deno.test("while every source is idle the clock keeps its value and quietMs is the smallest wall_ms", () => {
  const state = emptyClockState();
  applyAll(state, [mark(0, T0 + 100), mark(1, T0 + 900)]);
  const clocks = applyAll(state, [
    mark(0, T0 + 100, { idle: true, wall: T0 + 40_000 }),
    mark(1, T0 + 900, { idle: true, wall: T0 + 30_000 }),
    // Later idle records carry later wall times: quietMs follows the smallest latest one.
    mark(1, T0 + 900, { idle: true, wall: T0 + 45_000 }),
    mark(0, T0 + 100, { idle: true, wall: T0 + 60_000 }),
  ]);
  assert.deepEqual(clocks, [
    clock(T0 + 900),
    clock(T0 + 900, T0 + 30_000),
    clock(T0 + 900, T0 + 40_000),
    clock(T0 + 900, T0 + 45_000),
  ]);
  // One source active again: quiet close no longer applies; the clock moves from there.
  const resumed = applyAll(state, [mark(0, T0 + 5_000), mark(1, T0 + 4_000)]);
  // Partition 0 alone is active at first; then partition 1's lower watermark cannot move
  // the clock back.
  assert.deepEqual(resumed, [clock(T0 + 5_000), clock(T0 + 5_000)]);
});

Deno.test("every source idle before the clock was ever defined: no clock, but quiet close applies", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, null, { idle: true, wall: T0 + 70_000 }),
    mark(1, null, { idle: true, wall: T0 + 65_000 }),
  ]);
  assert.deepEqual(clocks, [clock(null), clock(null, T0 + 65_000)]);
});

Deno.test("an active source whose watermark is null holds the clock", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, null),
    mark(1, T0 + 500),
    mark(1, T0 + 900),
    mark(0, T0 + 300),
    // Partition 0's normalizer was replaced: active, nothing normalized yet.
    mark(0, null),
    mark(1, T0 + 5_000),
    mark(0, T0 + 4_000),
  ]);
  assert.deepEqual(clocks.map((c) => c.clockMs), [
    null,
    null,
    null,
    T0 + 300,
    T0 + 300,
    T0 + 300,
    T0 + 4_000,
  ]);
  assert.ok(clocks.every((c) => c.quietMs === null));
});

Deno.test("an idle source whose watermark is null does not hold the clock", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, null, { idle: true, wall: T0 }),
    mark(1, T0 + 500),
  ]);
  assert.deepEqual(clocks, [clock(null), clock(T0 + 500)]);
});

Deno.test("when the source topic gains partitions, the new one must report before the clock moves or quiet close applies", () => {
  const state = emptyClockState();
  applyAll(state, [mark(0, T0 + 100), mark(1, T0 + 200)]);
  assert.deepEqual(currentClock(state), clock(T0 + 100));
  const clocks = applyAll(state, [
    // A record from an old partition tells of a third one.
    mark(0, T0 + 1_000, { partitions: 3 }),
    mark(1, T0 + 1_000, { partitions: 3 }),
    // Every source heard from is idle, but partition 2 was not heard from: not quiet.
    mark(0, T0 + 1_000, { partitions: 3, idle: true, wall: T0 + 50_000 }),
    mark(1, T0 + 1_000, { partitions: 3, idle: true, wall: T0 + 50_000 }),
    mark(2, null, { partitions: 3, idle: true, wall: T0 + 90_000 }),
  ]);
  assert.deepEqual(clocks, [
    clock(T0 + 100),
    clock(T0 + 100),
    clock(T0 + 100),
    clock(T0 + 100),
    clock(T0 + 100, T0 + 50_000),
  ]);
  assert.deepEqual(state.source_partitions, { [TICKS]: 3 });
  // A record still saying 2 partitions (written before the change) does not shrink the set.
  applyAll(state, [mark(0, T0 + 2_000, { partitions: 2 })]);
  assert.deepEqual(state.source_partitions, { [TICKS]: 3 });
  assert.deepEqual(currentClock(state), clock(T0 + 2_000));
});

Deno.test("event clock waits for every partition of every source topic and takes the minimum across topics", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, T0 + 500, { topic: TICKS, partitions: 2 }),
    mark(0, T0 + 300, { topic: CURVES, partitions: 1 }),
    mark(1, T0 + 600, { topic: TICKS, partitions: 2 }), // every partition of both topics
    mark(0, T0 + 900, { topic: CURVES, partitions: 1 }),
    mark(0, T0 + 700, { topic: TICKS, partitions: 2 }),
    // Partition 0 of each topic is a different source: CURVES:0 idle leaves TICKS:0 active.
    mark(0, T0 + 100, { topic: CURVES, partitions: 1, idle: true, wall: T0 + 10_000 }),
    mark(1, T0 + 800, { topic: TICKS, partitions: 2 }),
  ]);
  assert.deepEqual(clocks.map((c) => c.clockMs), [
    null,
    null,
    T0 + 300,
    T0 + 500,
    T0 + 600,
    T0 + 600,
    T0 + 700,
  ]);
  assert.ok(clocks.every((c) => c.quietMs === null));
  assert.deepEqual(Object.keys(state.sources).sort(), [
    `${CURVES}:0`,
    `${TICKS}:0`,
    `${TICKS}:1`,
  ]);
});

Deno.test("a source topic first heard from after the clock was defined holds it until all its partitions report", () => {
  const state = emptyClockState();
  const clocks = applyAll(state, [
    mark(0, T0 + 300, { topic: CURVES, partitions: 1 }),
    mark(0, T0 + 500, { topic: TICKS, partitions: 2 }),
    mark(0, T0 + 900, { topic: CURVES, partitions: 1 }),
    mark(1, T0 + 600, { topic: TICKS, partitions: 2 }),
  ]);
  // The partition only knows the topics it has heard from: CURVES alone defines the clock.
  // Once TICKS is known, its unheard partition 1 holds the clock where it was.
  assert.deepEqual(clocks.map((c) => c.clockMs), [T0 + 300, T0 + 300, T0 + 300, T0 + 500]);
});

Deno.test("event clock state survives JSON and the schema: a restored copy continues identically", () => {
  const records = [
    mark(0, T0 + 100),
    mark(1, T0 + 900),
    mark(0, T0 + 1_000, { idle: true, wall: T0 + 20_000 }),
    mark(1, T0 + 1_100, { idle: true, wall: T0 + 25_000 }),
    mark(0, T0 + 2_000, { partitions: 3 }),
    mark(2, T0 + 1_500, { partitions: 3 }),
    mark(1, T0 + 3_000, { partitions: 3 }),
  ];
  const whole = emptyClockState();
  const wholeClocks = applyAll(whole, records);
  for (let cut = 0; cut <= records.length; cut++) {
    const first = emptyClockState();
    const before = applyAll(first, records.slice(0, cut));
    const restored = ClockState.parse(JSON.parse(JSON.stringify(first)));
    const after = applyAll(restored, records.slice(cut));
    assert.deepEqual([...before, ...after], wholeClocks, `cut at ${cut}`);
    assert.deepEqual(restored, whole, `cut at ${cut}`);
  }
});
