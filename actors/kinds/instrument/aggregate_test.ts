import assert from "node:assert/strict";
import type { NormalizedTick } from "../../../messages/normalized_tick.ts";
import { barDifferences, barKey, expectedInstruments } from "../../../tests/expected.ts";
import { type EventClock, UNDEFINED_CLOCK } from "../../event_clock.ts";
import {
  advanceClock,
  allBarsFinal,
  applyTicks,
  type BarState,
  barVersion,
  barVwap,
  initialInstrumentContext,
  type InstrumentContext,
  latestVersion,
  nextCloseAt,
  type Rejection,
  takeChanges,
  type TickInput,
} from "./aggregate.ts";
import { at, HOUR, ID, LATENESS, MIN, PARAMS, SEC, T0, tick } from "./test_fixtures.ts";

function fresh(versionBase = 0): InstrumentContext {
  return initialInstrumentContext(ID, PARAMS, versionBase);
}

/** The rejections of the last batch applied to each context. */
const lastRejections = new WeakMap<InstrumentContext, Rejection[]>();

function apply(ctx: InstrumentContext, inputs: readonly TickInput[]): void {
  lastRejections.set(ctx, applyTicks(ctx, inputs));
}

function rejectedBy(ctx: InstrumentContext): Rejection[] {
  return lastRejections.get(ctx) ?? [];
}

/** Applies ticks that all come with the same partition clock (undefined by default). */
function feed(
  ctx: InstrumentContext,
  ticks: readonly NormalizedTick[],
  clock: EventClock = UNDEFINED_CLOCK,
): void {
  apply(ctx, ticks.map((t) => ({ tick: t, clock })));
}

/**
 * Inputs as a partition with a watermark after every event gives them: each event comes
 * with the greatest event time of the events before it (undefined for the first).
 */
function watermarkedInputs(ticks: readonly NormalizedTick[]): TickInput[] {
  let max: number | null = null;
  return ticks.map((t) => {
    const input = { tick: t, clock: at(max) };
    max = Math.max(max ?? -Infinity, t.event_time_ms);
    return input;
  });
}

function barAt(ctx: InstrumentContext, resolution: string, start: number): BarState {
  const bar = ctx.bars[resolution]?.find((b) => b.start_ms === start);
  if (bar === undefined) {
    const starts = ctx.bars[resolution]?.map((b) => b.start_ms);
    throw new Error(`no ${resolution} bar at ${start}; bars start at ${starts}`);
  }
  return bar;
}

function ohlc(bar: BarState) {
  return {
    start_ms: bar.start_ms,
    end_ms: bar.end_ms,
    open: bar.open,
    high: bar.high,
    low: bar.low,
    close: bar.close,
    volume: bar.volume,
    vwap: barVwap(bar),
    count: bar.count,
  };
}

function permutations<T>(items: readonly T[]): T[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((item, i) =>
    permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [item, ...rest])
  );
}

Deno.test("a tick exactly at a window's start and one at end - 1 ms share a bar; one at end opens the next", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0, 1), tick("b", T0 + MIN - 1, 2), tick("c", T0 + MIN, 3)]);
  const first = barAt(ctx, "1m", T0);
  assert.equal(first.end_ms, T0 + MIN);
  assert.equal(first.count, 2);
  assert.equal(first.open, 1);
  assert.equal(first.close, 2);
  const second = barAt(ctx, "1m", T0 + MIN);
  assert.equal(second.count, 1);
  assert.equal(second.open, 3);
  assert.equal(ctx.bars["1h"]!.length, 1);
  assert.equal(barAt(ctx, "1h", T0).count, 3);
  assert.equal(barAt(ctx, "1h", T0).end_ms, T0 + HOUR);
});

Deno.test("bars are aligned to the UTC epoch, not to the first event", () => {
  const ctx = fresh();
  const t = T0 + 25 * MIN + 37_123; // 10:25:37.123Z
  feed(ctx, [tick("a", t, 1)]);
  assert.deepEqual(ctx.bars["1m"]!.map((b) => [b.start_ms, b.end_ms]), [[
    T0 + 25 * MIN,
    T0 + 26 * MIN,
  ]]);
  assert.deepEqual(ctx.bars["1h"]!.map((b) => [b.start_ms, b.end_ms]), [[T0, T0 + HOUR]]);
});

Deno.test("event times before the epoch floor to the window below, and 0 starts a window", () => {
  const ctx = initialInstrumentContext(ID, { ...PARAMS, allowedLatenessMs: HOUR });
  feed(ctx, [tick("a", -1, 1), tick("b", 0, 2), tick("c", -MIN, 3)]);
  assert.deepEqual(ctx.bars["1m"]!.map((b) => [b.start_ms, b.count]), [[-MIN, 2], [0, 1]]);
  assert.deepEqual(ctx.bars["1h"]!.map((b) => [b.start_ms, b.count]), [[-HOUR, 2], [0, 1]]);
});

Deno.test("negative prices give the right open, high, low, close and vwap", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, -10, 1), tick("b", T0 + 2, -30, 3), tick("c", T0 + 3, -0.5, 1)]);
  const bar = barAt(ctx, "1m", T0);
  assert.equal(bar.open, -10);
  assert.equal(bar.high, -0.5);
  assert.equal(bar.low, -30);
  assert.equal(bar.close, -0.5);
  assert.equal(barVwap(bar), (-10 - 90 - 0.5) / 5);
  assert.equal(ctx.latest?.price, -0.5);
});

Deno.test("open and close follow (event time, event_id) in every arrival order", () => {
  const params = { ...PARAMS, allowedLatenessMs: HOUR };
  // Equal times with different ids: (T0+10, "a") opens, (T0+30, "c") closes.
  const ticks = [
    tick("b", T0 + 20 * SEC, 2),
    tick("z", T0 + 10 * SEC, 1),
    tick("a", T0 + 10 * SEC, 0.5),
    tick("c", T0 + 30 * SEC, 9),
    tick("a2", T0 + 30 * SEC, 8),
  ];
  const orders = permutations(ticks);
  assert.equal(orders.length, 120);
  for (const order of orders) {
    const ctx = initialInstrumentContext(ID, params);
    feed(ctx, order);
    const bar = barAt(ctx, "1m", T0);
    const arrival = order.map((t) => t.event_id).join(",");
    assert.deepEqual(
      [bar.open, bar.close, bar.high, bar.low, bar.count],
      [0.5, 9, 9, 0.5, 5],
      arrival,
    );
    assert.deepEqual([bar.open_id, bar.close_id], ["a", "c"], arrival);
    assert.equal(ctx.latest?.event_id, "c", arrival);
    const expected = expectedInstruments(order, params).bars.get(barKey(ID, "1m", T0))!;
    assert.deepEqual(barDifferences(ohlc(bar), expected), [], arrival);
  }
});

Deno.test("vwap is sum(price x size) / volume, volume sums sizes and count counts events", () => {
  const ctx = fresh();
  const ticks = [tick("a", T0 + 1, 10, 2), tick("b", T0 + 2, 20, 3), tick("c", T0 + 3, -5, 5)];
  feed(ctx, ticks);
  const bar = barAt(ctx, "1m", T0);
  assert.equal(bar.volume, 10);
  assert.equal(bar.count, 3);
  assert.equal(barVwap(bar), 5.5); // (20 + 60 - 25) / 10
  // The oracle computes the same hand-checked numbers.
  const expected = expectedInstruments(ticks, PARAMS).bars.get(barKey(ID, "1m", T0))!;
  assert.deepEqual(
    [expected.open, expected.high, expected.low, expected.close, expected.volume, expected.vwap],
    [10, 20, -5, -5, 10, 5.5],
  );
  assert.equal(expected.count, 3);
});

Deno.test("a redelivered event_id is counted once, even in the same batch or with other content", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, 10, 2), tick("a", T0 + 1, 10, 2)]);
  feed(ctx, [tick("a", T0 + 2, 99, 50), tick("b", T0 + 3, 11, 1)]);
  const bar = barAt(ctx, "1m", T0);
  assert.deepEqual([bar.count, bar.volume, bar.high, bar.close], [2, 3, 11, 11]);
  assert.equal(ctx.applied, 2);
  assert.equal(ctx.duplicates, 2);
  assert.equal(rejectedBy(ctx).length, 0);
  assert.equal(latestVersion(ctx), 2);
});

// ---------------------------------------------------------------------------------------
// Lateness: judged by the partition clock that comes with each event

Deno.test("an event at clock - lateness is counted; one a millisecond older is rejected as late_event and changes nothing", () => {
  const ctx = fresh();
  const clock = T0 + 30 * SEC;
  feed(ctx, [tick("a", clock, 1)], at(clock));
  feed(ctx, [tick("edge", clock - LATENESS, 2)], at(clock));
  assert.equal(rejectedBy(ctx).length, 0);
  assert.equal(barAt(ctx, "1m", T0).count, 2);
  takeChanges(ctx);

  const applied = ctx.applied;
  feed(ctx, [tick("ok", clock + 1, 3), tick("late", clock + 1 - LATENESS - 1, 4)], at(clock + 1));
  assert.equal(rejectedBy(ctx).length, 1);
  assert.equal(rejectedBy(ctx)[0]!.index, 1);
  assert.equal(rejectedBy(ctx)[0]!.reason, "late_event");
  assert.match(rejectedBy(ctx)[0]!.message, new RegExp(`clock ${clock + 1}`));
  assert.equal(ctx.applied, applied + 1);
  // Only "ok" changed anything: the bar has 3 events and "late" is not among them.
  assert.equal(barAt(ctx, "1m", T0).count, 3);
  assert.equal(barAt(ctx, "1m", T0).low, 1);

  // A batch of nothing but a late event leaves the state exactly as it was.
  takeChanges(ctx);
  const snapshot = JSON.stringify(ctx);
  feed(ctx, [tick("late2", T0, 5)], at(clock + 1));
  assert.deepEqual(rejectedBy(ctx).map((r) => [r.index, r.reason]), [[0, "late_event"]]);
  assert.deepEqual(JSON.parse(JSON.stringify(ctx)), JSON.parse(snapshot));
});

Deno.test("a late event redelivered is rejected again and never counted", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 30 * SEC, 1)], at(T0 + 30 * SEC));
  feed(ctx, [tick("late", T0, 2)], at(T0 + 30 * SEC));
  feed(ctx, [tick("late", T0, 2)], at(T0 + 30 * SEC));
  assert.equal(rejectedBy(ctx).length, 1);
  assert.equal(ctx.applied, 1);
});

Deno.test("an instrument's own events far ahead are not its clock: older events still count and bars stay open", () => {
  const ctx = fresh();
  // Its own events are two hours ahead of the partition clock (another source lags).
  feed(ctx, [tick("ahead", T0 + 2 * HOUR, 1)], at(T0 + 10 * SEC));
  feed(ctx, [tick("behind", T0 + 6 * SEC, 2)], at(T0 + 10 * SEC));
  assert.equal(rejectedBy(ctx).length, 0);
  assert.equal(barAt(ctx, "1m", T0).count, 1);
  assert.equal(barAt(ctx, "1m", T0).final, false);
  assert.equal(barAt(ctx, "1h", T0).final, false);
  assert.equal(ctx.clockMs, T0 + 10 * SEC);
  assert.equal(ctx.latest?.event_id, "ahead");
  // Undefined clock: the same holds with no clock at all.
  const none = fresh();
  feed(none, [tick("ahead", T0 + 2 * HOUR, 1)]);
  feed(none, [tick("behind", T0, 2)]);
  assert.equal(rejectedBy(none).length, 0);
  assert.equal(none.applied, 2);
  assert.equal(none.clockMs, null);
});

Deno.test("each event in a batch is judged by the clock at its own offset", () => {
  const ctx = fresh();
  apply(ctx, [
    { tick: tick("a", T0 + 10 * SEC, 1), clock: at(T0 + 10 * SEC) },
    // A watermark between the two events moved the clock to T0 + 20 s.
    { tick: tick("b", T0 + 14 * SEC, 2), clock: at(T0 + 20 * SEC) },
    { tick: tick("c", T0 + 15 * SEC, 3), clock: at(T0 + 20 * SEC) },
  ]);
  assert.deepEqual(rejectedBy(ctx).map((r) => r.index), [1]);
  assert.equal(barAt(ctx, "1m", T0).count, 2);
  assert.equal(ctx.clockMs, T0 + 20 * SEC);
  // The same event before the watermark would have counted.
  const earlier = fresh();
  apply(earlier, [
    { tick: tick("a", T0 + 10 * SEC, 1), clock: at(T0 + 10 * SEC) },
    { tick: tick("b", T0 + 14 * SEC, 2), clock: at(T0 + 10 * SEC) },
    { tick: tick("c", T0 + 15 * SEC, 3), clock: at(T0 + 20 * SEC) },
  ]);
  assert.equal(rejectedBy(earlier).length, 0);
  assert.equal(barAt(earlier, "1m", T0).count, 3);
});

Deno.test("the instrument's clock never moves back, even if a lower clock comes with an event", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 30 * SEC, 1)], at(T0 + 30 * SEC));
  feed(ctx, [tick("b", T0 + 20 * SEC, 2)], at(T0 + 10 * SEC));
  assert.equal(ctx.clockMs, T0 + 30 * SEC);
  assert.deepEqual(rejectedBy(ctx).map((r) => r.index), [0]);
  advanceClock(ctx, UNDEFINED_CLOCK);
  assert.equal(ctx.clockMs, T0 + 30 * SEC);
});

Deno.test("with an undefined clock nothing is late and nothing is final", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 5 * HOUR, 1), tick("b", T0, 2), tick("c", T0 + 2 * HOUR, 3)]);
  advanceClock(ctx, UNDEFINED_CLOCK);
  assert.equal(rejectedBy(ctx).length, 0);
  assert.equal(ctx.applied, 3);
  assert.equal(ctx.clockMs, null);
  for (const list of Object.values(ctx.bars)) assert.ok(list.every((b) => !b.final));
  assert.equal(ctx.closedSinceFlush, false);
  assert.equal(nextCloseAt(ctx), T0 + MIN + LATENESS);
  assert.equal(allBarsFinal(ctx), false);
});

// ---------------------------------------------------------------------------------------
// Finality by the clock

Deno.test("a bar becomes final when the partition clock reaches end + lateness, not a millisecond before", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, 1)], at(T0));
  advanceClock(ctx, at(T0 + MIN + LATENESS - 1));
  assert.equal(barAt(ctx, "1m", T0).final, false);
  assert.equal(barVersion(ctx, barAt(ctx, "1m", T0)), 2);
  assert.equal(ctx.closedSinceFlush, false);
  takeChanges(ctx);
  advanceClock(ctx, at(T0 + MIN + LATENESS));
  const bar = barAt(ctx, "1m", T0);
  assert.equal(bar.final, true);
  assert.equal(barVersion(ctx, bar), 3);
  assert.equal(ctx.closedSinceFlush, true);
  assert.deepEqual(takeChanges(ctx).bars.map((c) => c.key), [`1m|${T0}`]);
  assert.equal(barAt(ctx, "1h", T0).final, false);
  // The hour bar in turn.
  advanceClock(ctx, at(T0 + HOUR + LATENESS - 1));
  assert.equal(barAt(ctx, "1h", T0).final, false);
  advanceClock(ctx, at(T0 + HOUR + LATENESS));
  assert.equal(barAt(ctx, "1h", T0).final, true);
  assert.equal(allBarsFinal(ctx), true);
});

Deno.test("a clock that comes with an event closes bars before the event is applied", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, 1)], at(T0));
  // The event opens the next minute; its clock already passed the first bar's end + lateness.
  feed(ctx, [tick("b", T0 + MIN + LATENESS, 2)], at(T0 + MIN + LATENESS));
  assert.equal(barAt(ctx, "1m", T0).final, true);
  assert.equal(barAt(ctx, "1m", T0 + MIN).final, false);
  assert.equal(barAt(ctx, "1m", T0).count, 1);
});

Deno.test("an event's own time, however far ahead, does not close its instrument's bars", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, 1)], at(T0));
  feed(ctx, [tick("b", T0 + 3 * HOUR, 2)], at(T0));
  assert.equal(barAt(ctx, "1m", T0).final, false);
  assert.equal(barAt(ctx, "1h", T0).final, false);
  assert.equal(nextCloseAt(ctx), T0 + MIN + LATENESS);
});

Deno.test("nextCloseAt is the earliest open bar's end + lateness, and null when every bar is final", () => {
  const ctx = fresh();
  assert.equal(nextCloseAt(ctx), null);
  feed(ctx, [tick("a", T0 + 2 * MIN + 1, 1), tick("b", T0 + 1, 1)], at(T0));
  assert.equal(nextCloseAt(ctx), T0 + MIN + LATENESS);
  advanceClock(ctx, at(T0 + MIN + LATENESS));
  assert.equal(nextCloseAt(ctx), T0 + 3 * MIN + LATENESS);
  advanceClock(ctx, at(T0 + 3 * MIN + LATENESS));
  assert.equal(nextCloseAt(ctx), T0 + HOUR + LATENESS);
  advanceClock(ctx, at(T0 + HOUR + LATENESS));
  assert.equal(nextCloseAt(ctx), null);
  assert.equal(allBarsFinal(ctx), true);
  // A bar opened by quiet close is final at once: nothing to wait for.
  feed(ctx, [tick("c", T0 + HOUR + 1, 1)], at(T0 + HOUR + LATENESS, T0 + 3 * HOUR));
  assert.equal(nextCloseAt(ctx), null);
});

Deno.test("advanceClock with a clock that did not move and no quiet time changes nothing", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, 1)], at(T0 + 1));
  takeChanges(ctx);
  const before = JSON.stringify(ctx);
  advanceClock(ctx, at(T0 + 1));
  advanceClock(ctx, at(T0));
  advanceClock(ctx, UNDEFINED_CLOCK);
  assert.equal(JSON.stringify(ctx), before);
});

// ---------------------------------------------------------------------------------------
// Quiet close (every source idle) and corrections

Deno.test("quiet close finalises bars whose end + lateness is below quietMs, not equal to it", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 10 * SEC, 1)], at(T0 + 10 * SEC));
  advanceClock(ctx, at(T0 + 10 * SEC, T0 + MIN + LATENESS));
  assert.equal(barAt(ctx, "1m", T0).final, false);
  assert.equal(ctx.closedSinceFlush, false);
  advanceClock(ctx, at(T0 + 10 * SEC, T0 + MIN + LATENESS + 1));
  assert.equal(barAt(ctx, "1m", T0).final, true);
  assert.equal(barAt(ctx, "1h", T0).final, false);
  assert.equal(ctx.closedSinceFlush, true);
  // The clock itself did not move.
  assert.equal(ctx.clockMs, T0 + 10 * SEC);
  assert.equal(nextCloseAt(ctx), T0 + HOUR + LATENESS);
  advanceClock(ctx, at(T0 + 10 * SEC, T0 + HOUR + LATENESS));
  assert.equal(barAt(ctx, "1h", T0).final, false);
  advanceClock(ctx, at(T0 + 10 * SEC, T0 + HOUR + LATENESS + 1));
  assert.equal(barAt(ctx, "1h", T0).final, true);
  assert.equal(nextCloseAt(ctx), null);
});

Deno.test("quiet close applies even while the clock is undefined, and nothing becomes late", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 10 * SEC, 1)]);
  advanceClock(ctx, at(null, T0 + 2 * MIN));
  assert.equal(barAt(ctx, "1m", T0).final, true);
  assert.equal(barAt(ctx, "1h", T0).final, false);
  assert.equal(ctx.clockMs, null);
  feed(ctx, [tick("b", T0 + 1, 2)], at(null, T0 + 2 * MIN));
  assert.equal(rejectedBy(ctx).length, 0);
  assert.equal(barAt(ctx, "1m", T0).count, 2);
  assert.equal(barAt(ctx, "1m", T0).final, true);
});

Deno.test("an event for a quiet-closed bar within lateness of the clock is a correction: final, higher version", () => {
  const ctx = fresh();
  const clock = T0 + 10 * SEC;
  feed(ctx, [tick("a", T0 + 10 * SEC, 10, 1)], at(clock));
  takeChanges(ctx);
  // Every source idle: quiet close although the clock is still inside the bar.
  advanceClock(ctx, at(clock, T0 + MIN + LATENESS + 1));
  const bar = barAt(ctx, "1m", T0);
  assert.equal(bar.final, true);
  const finalVersion = barVersion(ctx, bar);
  assert.deepEqual(takeChanges(ctx).bars.map((c) => c.key), [`1m|${T0}`]);

  // A source is active again, the clock is still T0+10s: T0+6s is within the lateness.
  feed(ctx, [tick("b", T0 + 6 * SEC, 20, 3)], at(clock));
  assert.equal(rejectedBy(ctx).length, 0);
  const corrected = barAt(ctx, "1m", T0);
  assert.equal(corrected.final, true);
  assert.ok(barVersion(ctx, corrected) > finalVersion);
  assert.deepEqual(
    [corrected.open, corrected.close, corrected.count, corrected.volume, barVwap(corrected)],
    [20, 10, 2, 4, 17.5],
  );
  assert.ok(takeChanges(ctx).bars.map((c) => c.key).includes(`1m|${T0}`));

  // Exactly clock - lateness is still a correction; one older is not but a late_event.
  feed(ctx, [tick("c", clock - LATENESS, 30)], at(clock));
  assert.equal(rejectedBy(ctx).length, 0);
  assert.equal(barAt(ctx, "1m", T0).count, 3);
  const version = barVersion(ctx, barAt(ctx, "1m", T0));
  feed(ctx, [tick("d", clock - LATENESS - 1, 40)], at(clock));
  assert.equal(rejectedBy(ctx).length, 1);
  assert.equal(barAt(ctx, "1m", T0).count, 3);
  assert.equal(barVersion(ctx, barAt(ctx, "1m", T0)), version);
});

Deno.test("an event applied while every source is idle opens a bar that may be final at once", () => {
  const ctx = fresh();
  const clock = at(T0 + 10 * SEC, T0 + 5 * MIN);
  feed(ctx, [tick("a", T0 + MIN + 1, 1), tick("b", T0 + 4 * MIN + 59 * SEC, 2)], clock);
  // end + lateness of the 2nd minute is below quietMs: final; the 5th minute's is not.
  assert.equal(barAt(ctx, "1m", T0 + MIN).final, true);
  assert.equal(barVersion(ctx, barAt(ctx, "1m", T0 + MIN)), 3);
  assert.equal(barAt(ctx, "1m", T0 + 4 * MIN).final, false);
  assert.equal(barAt(ctx, "1h", T0).final, false);
  // Once a source is active again, only the clock closes bars.
  feed(ctx, [tick("c", T0 + 2 * MIN + 1, 3)], at(T0 + 10 * SEC));
  assert.equal(barAt(ctx, "1m", T0 + 2 * MIN).final, false);
});

Deno.test("latest is the counted event with the greatest (event time, event_id), not the last to arrive", () => {
  const ctx = fresh();
  feed(ctx, [tick("m", T0 + 5, 1, 1)]);
  feed(ctx, [tick("a", T0 + 5, 2, 2), tick("x", T0 + 4, 3, 3)]);
  assert.deepEqual(ctx.latest, { price: 1, size: 1, event_time_ms: T0 + 5, event_id: "m" });
  feed(ctx, [tick("z", T0 + 5, 4, 4)]);
  assert.deepEqual(ctx.latest, { price: 4, size: 4, event_time_ms: T0 + 5, event_id: "z" });
});

Deno.test("versions start at versionBase and grow with each counted event and with finality", () => {
  const ctx = fresh(1_000);
  feed(ctx, [tick("a", T0 + 1, 1)]);
  assert.equal(latestVersion(ctx), 1_001);
  assert.equal(barVersion(ctx, barAt(ctx, "1m", T0)), 1_002);
  feed(ctx, [tick("a", T0 + 1, 1), tick("b", T0 + 2, 1)]);
  assert.equal(latestVersion(ctx), 1_002);
  assert.equal(barVersion(ctx, barAt(ctx, "1m", T0)), 1_004);
  feed(ctx, [tick("c", T0 + MIN + LATENESS, 1)], at(T0 + MIN + LATENESS));
  assert.equal(latestVersion(ctx), 1_003);
  assert.equal(barVersion(ctx, barAt(ctx, "1m", T0)), 1_005);
  // Late and duplicate events move no version.
  feed(ctx, [tick("late", T0, 1), tick("c", T0 + MIN + LATENESS, 1)], at(T0 + MIN + LATENESS));
  assert.equal(latestVersion(ctx), 1_003);
  assert.equal(barVersion(ctx, barAt(ctx, "1m", T0)), 1_005);
});

Deno.test("takeChanges names each changed bar once and the latest, then clears them", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, 1), tick("b", T0 + 2, 1), tick("c", T0 + MIN + 1, 1)]);
  const changes = takeChanges(ctx);
  assert.deepEqual(
    changes.bars.map((c) => c.key).sort(),
    [`1h|${T0}`, `1m|${T0 + MIN}`, `1m|${T0}`].sort(),
  );
  assert.equal(changes.latest, true);
  assert.deepEqual(takeChanges(ctx), { bars: [], latest: false });
  feed(ctx, [tick("c", T0 + MIN + 1, 1)]);
  assert.deepEqual(takeChanges(ctx), { bars: [], latest: false });
});

Deno.test("a collect forgets the event ids past reach, so a snapshot keeps only those within it", () => {
  const ctx = fresh();
  // 50 events 1 s apart, the clock at the newest: 6 of them (LATENESS 5 s) are within reach.
  const ticks = Array.from({ length: 50 }, (_, i) => tick(`e${i}`, T0 + i * SEC, 10 + i));
  feed(ctx, ticks, at(T0 + 49 * SEC));
  takeChanges(ctx);
  assert.deepEqual([...ctx.seen.keys()], ["e44", "e45", "e46", "e47", "e48", "e49"]);
  assert.equal(ctx.seenCount, 6);
  // Within reach, an id is still a duplicate.
  feed(ctx, [ticks[45]!], at(T0 + 49 * SEC));
  assert.equal(ctx.duplicates, 1);
});

Deno.test("a redelivery after the seen set was pruned is still not counted twice", () => {
  const ctx = fresh();
  // 2,000 events over 200 s, one batch each, the clock one event behind: the seen set is
  // pruned several times.
  const ticks = Array.from({ length: 2_000 }, (_, i) => tick(`e${i}`, T0 + i * 100, i % 7));
  ticks.forEach((t, i) => {
    const clock = at(i === 0 ? null : ticks[i - 1]!.event_time_ms);
    // Each new event comes with a redelivery of one 4 s older (within the lateness).
    feed(ctx, i >= 40 ? [t, ticks[i - 40]!] : [t], clock);
    takeChanges(ctx);
    assert.equal(ctx.applied, i + 1, `after event ${i}`);
  });
  assert.ok(ctx.seenCount < 2_000, `seen set never pruned (${ctx.seenCount})`);
  const applied = ctx.applied;
  const duplicates = ctx.duplicates;
  const bars = JSON.stringify(ctx.bars);
  feed(ctx, ticks, at(ticks.at(-1)!.event_time_ms)); // everything again
  assert.equal(ctx.applied, applied);
  assert.equal(JSON.stringify(ctx.bars), bars);
  // What is within the lateness is a duplicate; what is older is a duplicate while its id
  // is remembered and late once forgotten: counted never.
  assert.ok(ctx.duplicates - duplicates >= LATENESS / 100 + 1);
  assert.equal(ctx.duplicates - duplicates + rejectedBy(ctx).length, 2_000);
});

Deno.test("pruning keeps every id within reach when events come out of time order", () => {
  const ctx = fresh();
  // Event times wander up to 3 s back from the newest (in reach for LATENESS 5 s, or not),
  // with the clock at the newest time before each event; a collect after every 10 events.
  let seed = 7;
  const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
  const ticks: NormalizedTick[] = [];
  let newest = T0;
  for (let i = 0; i < 3_000; i++) {
    newest += Math.floor(random() * 40);
    const t = random() < 0.2 ? newest - Math.floor(random() * 3 * SEC) : newest;
    ticks.push(tick(`e${i}`, t, i % 11));
    feed(ctx, [ticks[i]!], at(newest));
    if (i % 10 === 9) {
      takeChanges(ctx);
      const horizon = ctx.clockMs! - LATENESS;
      const kept = new Set(ctx.seen.keys());
      const inReach = ticks.filter((x, j) => j <= i && x.event_time_ms >= horizon);
      // (The clock only grows: what is in reach now was in reach, so applied, when it came.)
      const forgotten = inReach.filter((x) => !kept.has(x.event_id));
      assert.deepEqual(forgotten.map((x) => x.event_id), [], `after event ${i}`);
    }
  }
  // What came in order and fell out of reach is forgotten: the set stays near the window.
  assert.ok(ctx.seenCount < 600, `ids kept: ${ctx.seenCount}`);
});

Deno.test("an id far ahead of the clock does not keep the ids after it from being pruned", () => {
  const ctx = fresh();
  // The first event is 4 min ahead (within DATA_PROC_MAX_FUTURE_SKEW_MS), the rest come in
  // order 10 ms apart for 2 min, with the clock at each and a collect every 100 events.
  feed(ctx, [tick("ahead", T0 + 4 * MIN, 1)], at(T0));
  for (let i = 0; i < 12_000; i++) {
    feed(ctx, [tick(`e${i}`, T0 + i * 10, 2)], at(T0 + i * 10));
    if (i % 100 === 99) takeChanges(ctx);
  }
  // Within the 5 s lateness: ~500 ids, and the one ahead.
  assert.ok(ctx.seenCount < 1_000, `ids kept: ${ctx.seenCount}`);
  assert.ok(ctx.seen.has("ahead"));
});

Deno.test("final bars past the lateness leave memory once flushed; the newest bar per resolution stays", () => {
  const ctx = fresh();
  for (let m = 0; m < 300; m++) {
    feed(ctx, [tick(`e${m}`, T0 + m * MIN, m)], at(T0 + m * MIN));
    takeChanges(ctx);
  }
  assert.ok(ctx.bars["1m"]!.length <= 3, `1m bars kept: ${ctx.bars["1m"]!.length}`);
  assert.ok(ctx.bars["1h"]!.length <= 2, `1h bars kept: ${ctx.bars["1h"]!.length}`);
  assert.equal(ctx.bars["1m"]!.at(-1)!.start_ms, T0 + 299 * MIN);
  // Nothing more arrives: the newest (final by quiet close) bars are still there.
  advanceClock(ctx, at(T0 + 299 * MIN, T0 + 400 * MIN));
  assert.equal(allBarsFinal(ctx), true);
  takeChanges(ctx);
  // The clock moves far on (other instruments trade): the newest bars are still kept.
  advanceClock(ctx, at(T0 + 10 * HOUR));
  feed(ctx, [], at(T0 + 10 * HOUR));
  assert.equal(ctx.bars["1m"]!.at(-1)!.start_ms, T0 + 299 * MIN);
  assert.equal(ctx.bars["1h"]!.at(-1)!.start_ms, T0 + 4 * HOUR);
});

Deno.test("an unflushed final bar is kept in memory until takeChanges names it", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 1, 1)], at(T0 + 1));
  feed(ctx, [tick("b", T0 + 10 * MIN, 1)], at(T0 + 10 * MIN));
  // Not flushed yet: the final 1m bar at T0 must still be readable for the flush.
  assert.equal(barAt(ctx, "1m", T0).final, true);
  assert.ok(takeChanges(ctx).bars.map((c) => c.key).includes(`1m|${T0}`));
});

Deno.test("batch boundaries do not change bars, latest, rejections or the clock", () => {
  const inputs = watermarkedInputs([
    tick("a", T0 + 10 * SEC, 1),
    tick("b", T0 + 70 * SEC, 2),
    tick("c", T0 + 66 * SEC, 3),
    tick("d", T0 + 64 * SEC, 4), // late: the clock is T0+70s once b was written
    tick("a", T0 + 10 * SEC, 1),
    tick("e", T0 + 130 * SEC, 5),
  ]);
  const whole = fresh();
  apply(whole, inputs);
  const single = fresh();
  let rejected = 0;
  for (const input of inputs) {
    apply(single, [input]);
    rejected += rejectedBy(single).length;
  }
  assert.deepEqual(rejectedBy(whole).map((r) => r.index), [3]);
  assert.equal(rejected, 1);
  assert.deepEqual(single.bars, whole.bars);
  assert.deepEqual(single.latest, whole.latest);
  assert.equal(single.clockMs, whole.clockMs);
  assert.equal(whole.clockMs, T0 + 70 * SEC);
  assert.equal(barAt(whole, "1m", T0).final, true);
});

// `seen` was a plain object, and its stored form still is in older snapshots: an event_id
// named like an Object.prototype member ("constructor") must still count as new.
Deno.test("an event whose event_id is named like an Object.prototype member is counted", () => {
  const ids = ["constructor", "toString", "valueOf", "hasOwnProperty", "isPrototypeOf"];
  const ctx = fresh();
  feed(ctx, ids.map((id, i) => tick(id, T0 + i, i + 1)));
  assert.equal(ctx.duplicates, 0, `taken for duplicates: ${ctx.duplicates}`);
  assert.equal(ctx.applied, ids.length);
  assert.equal(barAt(ctx, "1m", T0).count, ids.length);
});

Deno.test("a late bar opened between bars that quiet close made final closes with the clock", () => {
  const ctx = fresh();
  feed(
    ctx,
    [tick("a", T0 + 10 * SEC, 1), tick("c", T0 + 2 * MIN + 10 * SEC, 3)],
    at(T0 + 10 * SEC),
  );
  advanceClock(ctx, at(T0 + 10 * SEC, T0 + 10 * MIN)); // every source idle
  assert.equal(barAt(ctx, "1m", T0).final, true);
  assert.equal(barAt(ctx, "1m", T0 + 2 * MIN).final, true);
  // Traffic again: an event within the lateness of the clock opens the bar between them.
  feed(ctx, [tick("b", T0 + MIN + 30 * SEC, 2)], at(T0 + 10 * SEC));
  assert.equal(barAt(ctx, "1m", T0 + MIN).final, false);
  assert.equal(nextCloseAt(ctx), T0 + 2 * MIN + LATENESS);
  advanceClock(ctx, at(T0 + 3 * MIN));
  assert.equal(barAt(ctx, "1m", T0 + MIN).final, true);
  assert.equal(nextCloseAt(ctx), T0 + HOUR + LATENESS);
});

Deno.test("a snapshot stored without the open-bar counts closes its bars all the same", () => {
  const ctx = fresh();
  feed(ctx, [tick("a", T0 + 10 * SEC, 1), tick("b", T0 + MIN + 10 * SEC, 2)], at(T0 + 10 * SEC));
  const stored = JSON.parse(JSON.stringify(ctx)) as InstrumentContext;
  delete stored.openBars;
  assert.equal(allBarsFinal(stored), false);
  advanceClock(stored, at(T0 + 3 * MIN));
  assert.equal(barAt(stored, "1m", T0).final, true);
  assert.equal(barAt(stored, "1m", T0 + MIN).final, true);
  assert.equal(nextCloseAt(stored), T0 + HOUR + LATENESS);
});

Deno.test("ten thousand unflushed minutes keep every bar for the flush, each named once", () => {
  const ctx = fresh();
  for (let m = 0; m < 10_000; m++) {
    feed(ctx, [tick(`e${m}`, T0 + m * MIN, m)], at(T0 + m * MIN));
  }
  const changes = takeChanges(ctx);
  const minutes = changes.bars.filter((c) => c.resolution === "1m");
  assert.equal(minutes.length, 10_000);
  assert.equal(new Set(minutes.map((c) => c.key)).size, 10_000);
  // The clock sits at the newest event: its bar and the one before are within the lateness.
  assert.equal(minutes.filter((c) => c.bar.final).length, 9_998);
  assert.equal(takeChanges(ctx).bars.length, 0);
});
