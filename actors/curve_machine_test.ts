import assert from "node:assert/strict";
import { type Actor, createActor } from "xstate";
import type { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import {
  curveRowKey,
  expectedCurves,
  generateCurvePoints,
  seededRandom,
} from "../tests/expected.ts";
import { curveVersion, snapshotPoints, takeCurveChanges } from "./curve_aggregate.ts";
import { curveMachine } from "./curve_machine.ts";

const T0 = Date.UTC(2027, 0, 15, 10, 0, 0);
const CURVE = "CURVE-001";

type CurveActor = Actor<typeof curveMachine>;

function point(
  event_id: string,
  as_of: string,
  tenor: string,
  price: number,
  event_time_ms: number,
): NormalizedCurvePoint {
  return {
    event_id,
    curve_id: CURVE,
    as_of,
    tenor,
    price,
    event_time_ms,
    source: "eex",
    curve: "DE-BASE",
    commodity: "power",
    region: "DE",
    currency: "EUR",
    unit: "MWh",
    ingest_time_ms: 0,
  };
}

function start(curveId = CURVE, versionBase?: number): CurveActor {
  const input = versionBase === undefined ? { curveId } : { curveId, versionBase };
  return createActor(curveMachine, { input }).start();
}

function send(actor: CurveActor, points: readonly NormalizedCurvePoint[]): void {
  actor.send({ type: "EVENTS", points });
}

function snapshotOf(actor: CurveActor) {
  const ctx = actor.getSnapshot().context;
  return { as_of: ctx.asOf, points: snapshotPoints(ctx) };
}

// ---------------------------------------------------------------------------------------
// What a runtime would flush: gold.curves rows and the curve snapshot projection.

interface Row {
  curve_id: string;
  as_of: string;
  tenor: string;
  price: number;
  event_time_ms: number;
  event_id: string;
  version: number;
}

interface CurveSink {
  rows: Map<string, Row>;
  snapshots: Map<string, { as_of: string; points: unknown[]; version: number }>;
  writes: string[];
}

function newSink(): CurveSink {
  return { rows: new Map(), snapshots: new Map(), writes: [] };
}

/** Writes the actor's changed rows and snapshot, as ReplacingMergeTree(version) keeps them. */
function flush(actor: CurveActor, sink: CurveSink): void {
  const ctx = actor.getSnapshot().context;
  const changes = takeCurveChanges(ctx);
  for (const key of changes.points) {
    const [asOf, tenor] = key.split("|") as [string, string];
    const state = ctx.asOfs[asOf]?.[tenor];
    if (state === undefined) throw new Error(`changed point ${key} is not in memory`);
    const k = curveRowKey(ctx.curveId, asOf, tenor);
    const previous = sink.rows.get(k);
    if (previous !== undefined) {
      assert.ok(state.version > previous.version, `${k}: ${state.version} <= ${previous.version}`);
    }
    // ReplacingMergeTree(version): the highest version is what FINAL shows.
    if (previous === undefined || state.version > previous.version) {
      sink.rows.set(k, {
        curve_id: ctx.curveId,
        as_of: asOf,
        tenor,
        price: state.price,
        event_time_ms: state.event_time_ms,
        event_id: state.event_id,
        version: state.version,
      });
    }
    sink.writes.push(`${k}@${state.version}`);
  }
  if (changes.snapshot && ctx.asOf !== null) {
    const version = curveVersion(ctx);
    const previous = sink.snapshots.get(ctx.curveId);
    if (previous !== undefined) assert.ok(version > previous.version);
    sink.snapshots.set(ctx.curveId, { as_of: ctx.asOf, points: snapshotPoints(ctx), version });
  }
}

function runCurves(
  points: readonly NormalizedCurvePoint[],
  options: { seed: number; maxBatch: number; restoreAfterBatch?: number },
) {
  const random = seededRandom(options.seed);
  const actors = new Map<string, CurveActor>();
  const sink = newSink();
  let batch = 0;
  let restored = 0;
  for (let i = 0; i < points.length;) {
    const size = 1 + Math.floor(random() * options.maxBatch);
    const chunk = points.slice(i, i + size);
    i += chunk.length;
    for (const [curveId, items] of Map.groupBy(chunk, (p) => p.curve_id)) {
      let actor = actors.get(curveId);
      if (actor === undefined) {
        actor = start(curveId);
        actors.set(curveId, actor);
      }
      send(actor, items);
      flush(actor, sink);
    }
    batch++;
    if (batch === options.restoreAfterBatch) {
      for (const [curveId, actor] of actors) {
        const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
        actor.stop();
        restored++;
        actors.set(
          curveId,
          createActor(curveMachine, { snapshot: persisted, input: { curveId } }).start(),
        );
      }
    }
  }
  return { actors, sink, restored };
}

function assertMatchesOracle(
  points: readonly NormalizedCurvePoint[],
  result: ReturnType<typeof runCurves>,
): void {
  const expected = expectedCurves(points);
  assert.deepEqual([...result.sink.rows.keys()].sort(), [...expected.rows.keys()].sort());
  for (const [key, row] of expected.rows) {
    const { version: _, ...got } = result.sink.rows.get(key)!;
    assert.deepEqual(got, row, key);
  }
  for (const [curveId, snapshot] of expected.snapshots) {
    const flushed = result.sink.snapshots.get(curveId)!;
    assert.deepEqual({ as_of: flushed.as_of, points: flushed.points }, {
      as_of: snapshot.as_of,
      points: snapshot.points,
    });
    assert.deepEqual(snapshotOf(result.actors.get(curveId)!), {
      as_of: snapshot.as_of,
      points: snapshot.points,
    });
  }
  assert.equal(new Set(result.sink.writes).size, result.sink.writes.length, "a version repeated");
}

function stopAll(actors: Map<string, CurveActor>): void {
  for (const actor of actors.values()) actor.stop();
}

// ---------------------------------------------------------------------------------------

Deno.test("curve machine starts empty and tracks a curve from its first points", () => {
  const actor = start();
  assert.equal(actor.getSnapshot().value, "empty");
  assert.deepEqual(snapshotOf(actor), { as_of: null, points: [] });
  send(actor, [point("a", "2027-01-14", "2027-02", 50, T0)]);
  assert.equal(actor.getSnapshot().value, "tracking");
  actor.stop();
});

Deno.test("curve snapshot takes each tenor from the greatest (event time, event_id), in any arrival order", () => {
  const points = [
    point("m", "2027-01-14", "2027-02", 51, T0 + 5),
    point("z", "2027-01-14", "2027-02", 52, T0 + 4), // older time, greater id: loses
    point("a", "2027-01-14", "2027-02", 53, T0 + 5), // same time, smaller id: loses
    point("q", "2027-01-14", "2027-02", 54, T0 + 5), // same time, greater id: wins
    point("b", "2027-01-14", "2027-Q2", -7.5, T0 + 1),
    point("c", "2027-01-14", "2027-01", 49, T0 + 2),
  ];
  const orders = [points, [...points].reverse(), [
    points[3]!,
    ...points.slice(0, 3),
    ...points.slice(4),
  ]];
  for (const order of orders) {
    const actor = start();
    for (const p of order) send(actor, [p]);
    const expected = {
      as_of: "2027-01-14",
      points: [
        { tenor: "2027-01", price: 49, event_time_ms: T0 + 2 },
        { tenor: "2027-02", price: 54, event_time_ms: T0 + 5 },
        { tenor: "2027-Q2", price: -7.5, event_time_ms: T0 + 1 },
      ],
    };
    assert.deepEqual(snapshotOf(actor), expected);
    const oracle = expectedCurves(order).snapshots.get(CURVE)!;
    assert.deepEqual({ as_of: oracle.as_of, points: oracle.points }, expected);
    actor.stop();
  }
});

Deno.test("a newer as_of replaces the curve snapshot, tenors of the old date included", () => {
  const actor = start();
  send(actor, [
    point("a", "2027-01-14", "2027-02", 50, T0),
    point("b", "2027-01-14", "2027-03", 51, T0),
  ]);
  takeCurveChanges(actor.getSnapshot().context);
  // The new date's point has an older event time: the as_of decides, not the time.
  send(actor, [point("c", "2027-01-15", "2027-03", 60, T0 - 1_000)]);
  assert.deepEqual(snapshotOf(actor), {
    as_of: "2027-01-15",
    points: [{ tenor: "2027-03", price: 60, event_time_ms: T0 - 1_000 }],
  });
  assert.deepEqual(takeCurveChanges(actor.getSnapshot().context), {
    points: ["2027-01-15|2027-03"],
    snapshot: true,
  });
  actor.stop();
});

Deno.test("an older as_of point leaves the snapshot alone but is kept for its ClickHouse row", () => {
  const actor = start();
  const sink = newSink();
  send(actor, [point("a", "2027-01-15", "2027-02", 50, T0)]);
  flush(actor, sink);
  const snapshotBefore = sink.snapshots.get(CURVE)!;
  send(actor, [point("b", "2027-01-14", "2027-02", 40, T0 + 10_000)]);
  const changes = takeCurveChanges(actor.getSnapshot().context);
  assert.deepEqual(changes, { points: ["2027-01-14|2027-02"], snapshot: false });
  assert.deepEqual(snapshotOf(actor), {
    as_of: "2027-01-15",
    points: [{ tenor: "2027-02", price: 50, event_time_ms: T0 }],
  });
  assert.equal(actor.getSnapshot().context.asOfs["2027-01-14"]?.["2027-02"]?.price, 40);
  // A later, better point for the old date replaces that row.
  send(actor, [point("c", "2027-01-14", "2027-02", 41, T0 + 20_000)]);
  flush(actor, sink);
  assert.equal(sink.rows.get(curveRowKey(CURVE, "2027-01-14", "2027-02"))?.price, 41);
  assert.equal(sink.snapshots.get(CURVE), snapshotBefore);
  actor.stop();
});

Deno.test("a redelivered curve point changes nothing", () => {
  const actor = start();
  const p = point("a", "2027-01-15", "2027-02", 50, T0);
  send(actor, [p]);
  const ctx = actor.getSnapshot().context;
  takeCurveChanges(ctx);
  const before = JSON.stringify(ctx.asOfs);
  const version = curveVersion(ctx);
  send(actor, [p, p]);
  assert.equal(JSON.stringify(actor.getSnapshot().context.asOfs), before);
  assert.equal(curveVersion(actor.getSnapshot().context), version);
  assert.deepEqual(takeCurveChanges(actor.getSnapshot().context), { points: [], snapshot: false });
  actor.stop();
});

Deno.test("curve versions start above the input's versionBase and grow with every winning point", () => {
  const actor = start(CURVE, 100);
  const sink = newSink();
  send(actor, [point("a", "2027-01-15", "2027-02", 50, T0)]);
  flush(actor, sink);
  assert.equal(sink.rows.get(curveRowKey(CURVE, "2027-01-15", "2027-02"))!.version, 101);
  assert.equal(sink.snapshots.get(CURVE)!.version, 101);
  send(actor, [point("b", "2027-01-15", "2027-02", 51, T0 + 1)]);
  send(actor, [point("c", "2027-01-15", "2027-02", 52, T0 - 1)]); // loses: no version
  flush(actor, sink);
  assert.equal(sink.rows.get(curveRowKey(CURVE, "2027-01-15", "2027-02"))!.version, 102);
  assert.equal(sink.rows.get(curveRowKey(CURVE, "2027-01-15", "2027-02"))!.price, 51);
  actor.stop();
});

Deno.test("curve RESET returns to empty and, given a versionBase above the old versions, replays to higher versions", () => {
  const actor = start();
  const points = [
    point("a", "2027-01-15", "2027-02", 50, T0),
    point("b", "2027-01-14", "2027-02", 40, T0),
    point("c", "2027-01-15", "2027-03", 55, T0),
  ];
  const before = newSink();
  send(actor, points);
  flush(actor, before);
  const top = curveVersion(actor.getSnapshot().context);
  actor.send({ type: "RESET", versionBase: top + 1 });
  assert.equal(actor.getSnapshot().value, "empty");
  assert.deepEqual(snapshotOf(actor), { as_of: null, points: [] });
  const after = newSink();
  send(actor, points);
  flush(actor, after);
  for (const [key, old] of before.rows) {
    const replayed = after.rows.get(key)!;
    assert.ok(replayed.version > old.version);
    assert.equal(replayed.price, old.price);
  }
  assert.ok(after.snapshots.get(CURVE)!.version > before.snapshots.get(CURVE)!.version);
  actor.stop();
});

Deno.test("curve snapshot -> JSON -> restore mid-stream gives the same results as one actor fed everything", () => {
  const points = generateCurvePoints({
    seed: 5,
    curves: 3,
    count: 2_000,
    startMs: T0,
    spreadMs: 3_600_000,
    asOfs: 8,
    tenors: 24,
    outOfOrderRatio: 0.3,
    duplicateRatio: 0.05,
  });
  const whole = runCurves(points, { seed: 9, maxBatch: 30 });
  const halves = runCurves(points, { seed: 9, maxBatch: 30, restoreAfterBatch: 60 });
  assert.equal(halves.restored, 3);
  assert.deepEqual(halves.sink, whole.sink);
  for (const [curveId, actor] of whole.actors) {
    assert.deepEqual(
      JSON.parse(JSON.stringify(halves.actors.get(curveId)!.getSnapshot().context)),
      JSON.parse(JSON.stringify(actor.getSnapshot().context)),
    );
  }
  assertMatchesOracle(points, halves);
  stopAll(whole.actors);
  stopAll(halves.actors);
});

Deno.test("randomized: out-of-order, redelivered curve points give the oracle's snapshots and rows", () => {
  for (const seed of [1, 2, 3, 99]) {
    const generated = generateCurvePoints({
      seed,
      curves: 4,
      count: 3_000,
      startMs: T0,
      spreadMs: 2 * 3_600_000,
      asOfs: 12,
      tenors: 30,
      outOfOrderRatio: 0.4,
      duplicateRatio: 0.1,
    });
    // Coarse event times: many ties, decided by event_id.
    const points = generated.map((p) => ({
      ...p,
      event_time_ms: Math.floor(p.event_time_ms / 60_000) * 60_000,
    }));
    const result = runCurves(points, { seed: seed + 17, maxBatch: 1 + seed * 7 });
    try {
      assertMatchesOracle(points, result);
    } catch (error) {
      throw new Error(`seed ${seed}: ${(error as Error).message}`, { cause: error });
    }
    stopAll(result.actors);
  }
});

// Only the newest keepAsOfs (400) as_of dates stay in memory. A point for a date evicted
// before has nothing to compare with, so it must not be written: otherwise it would "win"
// with a higher version even when it loses to the row already in ClickHouse.
Deno.test("a point for an as_of older than the dates kept in memory cannot replace a better row", () => {
  const actor = start();
  const sink = newSink();
  const day = (n: number) =>
    new Date(Date.UTC(2027, 0, 1) + n * 86_400_000).toISOString().slice(0, 10);
  const winner = point("w", day(0), "2027-06", 70, T0 + 10);
  const loser = point("l", day(0), "2027-06", 60, T0);
  send(actor, [loser, winner]);
  flush(actor, sink);
  for (let n = 1; n <= 410; n++) {
    send(actor, [point(`d${n}`, day(n), "2027-06", 70 + n, T0 + n * 86_400_000)]);
    flush(actor, sink);
  }
  send(actor, [loser]); // redelivered
  flush(actor, sink);
  const row = sink.rows.get(curveRowKey(CURVE, day(0), "2027-06"))!;
  assert.deepEqual([row.event_id, row.price], ["w", 70]);
  actor.stop();
});

// Tenors are keys of a plain object: a tenor named like an Object.prototype member must not
// find the inherited function as its "current" point.
Deno.test("a tenor named like an Object.prototype member is kept like any other", () => {
  const actor = start();
  send(actor, [point("a", "2027-01-15", "constructor", 50, T0)]);
  assert.deepEqual(snapshotOf(actor).points, [{
    tenor: "constructor",
    price: 50,
    event_time_ms: T0,
  }]);
  actor.stop();
});
