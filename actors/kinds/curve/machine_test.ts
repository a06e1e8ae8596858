import assert from "node:assert/strict";
import { type Actor, createActor } from "xstate";
import type { NormalizedCurvePoint } from "../../../messages/normalized_curve_point.ts";
import {
  curveRowKey,
  expectedCurves,
  generateCurvePoints,
  seededRandom,
} from "../../../tests/expected.ts";
import {
  type CurveRejection,
  type CurveRow,
  curveVersion,
  DEFAULT_KEEP_AS_OFS,
  snapshotPoints,
} from "./aggregate.ts";
import { curveMachine } from "./machine.ts";
import type { KeyedEvent } from "../../actor_kinds.ts";
import { curveAdapter } from "./machine.ts";
import { UNDEFINED_CLOCK } from "../../event_clock.ts";

const T0 = Date.UTC(2027, 0, 15, 10, 0, 0);
const CURVE = "CURVE-001";

/** The n-th calendar date from 2027-01-01. */
function day(n: number): string {
  return new Date(Date.UTC(2027, 0, 1) + n * 86_400_000).toISOString().slice(0, 10);
}

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

function start(curveId = CURVE, versionBase?: number, keepAsOfs?: number): CurveActor {
  const input = {
    curveId,
    ...(versionBase === undefined ? {} : { versionBase }),
    ...(keepAsOfs === undefined ? {} : { keepAsOfs }),
  };
  return listened(createActor(curveMachine, { input }));
}

/** Restores a persisted snapshot (JSON round-tripped or older) into a running actor. */
function restore(snapshot: unknown, curveId = CURVE): CurveActor {
  return listened(createActor(curveMachine, { snapshot: snapshot as never, input: { curveId } }));
}

/** What each actor emitted for its last batch (`rejected`) and its last COLLECT. */
const lastRejections = new WeakMap<CurveActor, CurveRejection[]>();
const lastChanges = new WeakMap<CurveActor, { rows: CurveRow[]; snapshot: boolean }>();

function listened(actor: CurveActor): CurveActor {
  actor.on("rejected", (e) => lastRejections.set(actor, e.rejections));
  actor.on("changes", (e) => lastChanges.set(actor, { rows: e.rows, snapshot: e.snapshot }));
  return actor.start();
}

function send(actor: CurveActor, points: readonly NormalizedCurvePoint[]): void {
  lastRejections.set(actor, []);
  actor.send({ type: "EVENTS", points });
}

/** The points of the actor's last batch that it rejected (emitted as `rejected`). */
function rejectedBy(actor: CurveActor): CurveRejection[] {
  return lastRejections.get(actor) ?? [];
}

/** Sends COLLECT and returns the changes the machine emitted for it. */
function collect(actor: CurveActor): { rows: CurveRow[]; snapshot: boolean } {
  lastChanges.delete(actor);
  actor.send({ type: "COLLECT" });
  const changes = lastChanges.get(actor);
  if (changes === undefined) throw new Error("COLLECT emitted no changes");
  return changes;
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
  const changes = collect(actor);
  for (const row of changes.rows) {
    const k = curveRowKey(ctx.curveId, row.as_of, row.tenor);
    const previous = sink.rows.get(k);
    if (previous !== undefined) {
      assert.ok(row.version > previous.version, `${k}: ${row.version} <= ${previous.version}`);
    }
    // ReplacingMergeTree(version): the highest version is what FINAL shows.
    if (previous === undefined || row.version > previous.version) {
      sink.rows.set(k, {
        curve_id: ctx.curveId,
        as_of: row.as_of,
        tenor: row.tenor,
        price: row.price,
        event_time_ms: row.event_time_ms,
        event_id: row.event_id,
        version: row.version,
      });
    }
    sink.writes.push(`${k}@${row.version}`);
  }
  if (changes.snapshot && ctx.asOf !== null) {
    const version = ctx.snapshotVersion;
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
          restore(persisted, curveId),
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
  collect(actor);
  // The new date's point has an older event time: the as_of decides, not the time.
  send(actor, [point("c", "2027-01-15", "2027-03", 60, T0 - 1_000)]);
  assert.deepEqual(snapshotOf(actor), {
    as_of: "2027-01-15",
    points: [{ tenor: "2027-03", price: 60, event_time_ms: T0 - 1_000 }],
  });
  const changes = collect(actor);
  assert.deepEqual(changes.rows.map((r) => [r.as_of, r.tenor, r.price]), [
    ["2027-01-15", "2027-03", 60],
  ]);
  assert.equal(changes.snapshot, true);
  actor.stop();
});

Deno.test("an older as_of point leaves the snapshot alone but is kept for its ClickHouse row", () => {
  const actor = start();
  const sink = newSink();
  send(actor, [point("a", "2027-01-15", "2027-02", 50, T0)]);
  flush(actor, sink);
  const snapshotBefore = sink.snapshots.get(CURVE)!;
  send(actor, [point("b", "2027-01-14", "2027-02", 40, T0 + 10_000)]);
  const changes = collect(actor);
  assert.deepEqual(changes.rows.map((r) => [r.as_of, r.tenor, r.price]), [
    ["2027-01-14", "2027-02", 40],
  ]);
  assert.equal(changes.snapshot, false);
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
  collect(actor);
  const before = JSON.stringify(ctx.asOfs);
  const version = curveVersion(ctx);
  send(actor, [p, p]);
  assert.equal(JSON.stringify(actor.getSnapshot().context.asOfs), before);
  assert.equal(curveVersion(actor.getSnapshot().context), version);
  assert.deepEqual(collect(actor), { rows: [], snapshot: false });
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

// Only the newest keepAsOfs (400) as_of dates stay in memory. A point for a date dropped
// before has nothing to compare with, so it must not be written (it would "win" with a higher
// version even when it loses to the row already in ClickHouse): it is rejected as stale_as_of,
// which the runtime sends to the DLQ.
Deno.test("a point for an as_of older than the dates kept in memory is rejected as stale_as_of, never written", () => {
  const actor = start();
  const sink = newSink();
  const winner = point("w", day(0), "2027-06", 70, T0 + 10);
  const loser = point("l", day(0), "2027-06", 60, T0);
  send(actor, [loser, winner]);
  flush(actor, sink);
  for (let n = 1; n <= DEFAULT_KEEP_AS_OFS + 10; n++) {
    send(actor, [point(`d${n}`, day(n), "2027-06", 70 + n, T0 + n * 86_400_000)]);
    flush(actor, sink);
  }
  const ctx = actor.getSnapshot().context;
  assert.equal(ctx.dates.length, DEFAULT_KEEP_AS_OFS);
  assert.equal(ctx.dates[0], day(11));
  send(actor, [point("x", day(11), "2027-07", 1, T0), loser]); // kept date; redelivered old one
  flush(actor, sink);
  assert.deepEqual(
    rejectedBy(actor).map((r) => [r.index, r.reason]),
    [[1, "stale_as_of"]],
  );
  assert.match(rejectedBy(actor)[0]!.message, new RegExp(`as_of ${day(0)}`));
  const row = sink.rows.get(curveRowKey(CURVE, day(0), "2027-06"))!;
  assert.deepEqual([row.event_id, row.price], ["w", 70]);
  assert.equal(sink.rows.get(curveRowKey(CURVE, day(11), "2027-07"))?.price, 1);
  // A date never seen, older than every kept date, is stale too (it may have been dropped).
  send(actor, [point("y", day(5), "2027-06", 1, T0)]);
  assert.equal(rejectedBy(actor).length, 1);
  assert.equal(actor.getSnapshot().context.stale, 2);
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

Deno.test("a tenor named __proto__ is an own row like any other and survives JSON", () => {
  const actor = start();
  send(actor, [point("a", "2027-01-15", "__proto__", 50, T0)]);
  assert.deepEqual(snapshotOf(actor).points, [{
    tenor: "__proto__",
    price: 50,
    event_time_ms: T0,
  }]);
  assert.deepEqual(collect(actor).rows.map((r) => r.tenor), ["__proto__"]);
  const restored = restore(JSON.parse(JSON.stringify(actor.getPersistedSnapshot())));
  send(restored, [point("b", "2027-01-15", "__proto__", 49, T0 - 1)]); // loses
  assert.deepEqual(snapshotOf(restored).points, [{
    tenor: "__proto__",
    price: 50,
    event_time_ms: T0,
  }]);
  actor.stop();
  restored.stop();
});

// ---------------------------------------------------------------------------------------
// Batch boundaries and memory: a 40-date backfill.

/** A backfill of `dates` as_of dates, several points (ties included) per tenor, shuffled. */
function backfill(seed: number, dates: number): NormalizedCurvePoint[] {
  const random = seededRandom(seed);
  const out: NormalizedCurvePoint[] = [];
  for (let d = 0; d < dates; d++) {
    for (let t = 0; t < 6; t++) {
      const tenor = `2028-${String(t + 1).padStart(2, "0")}`;
      for (let k = 0; k < 3; k++) {
        const time = T0 + d * 86_400_000 + Math.floor(random() * 4) * 1_000; // ties on time
        const price = Math.round((40 + t + random() * 20) * 100) / 100;
        out.push(
          point(`b-${d}-${t}-${k}-${Math.floor(random() * 1e6)}`, day(d), tenor, price, time),
        );
      }
    }
  }
  // Arrival in any order, with some redeliveries.
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  for (let i = 0; i < 60; i++) {
    const at = Math.floor(random() * out.length);
    out.splice(at + Math.floor(random() * (out.length - at)), 0, out[at]!);
  }
  return out;
}

/** Batch sizes covering `count` points. */
function batchings(count: number, seed: number): Record<string, number[]> {
  const random = seededRandom(seed);
  const sizes = (max: number) => {
    const out: number[] = [];
    for (let left = count; left > 0;) {
      const size = Math.min(left, 1 + Math.floor(random() * max));
      out.push(size);
      left -= size;
    }
    return out;
  };
  return {
    "one batch": [count],
    "one point per batch": Array.from({ length: count }, () => 1),
    "random up to 7": sizes(7),
    "random up to 300": sizes(300),
  };
}

interface BatchedRun {
  rows: Map<string, Row>;
  snapshot: { as_of: string; points: unknown[]; version: number } | undefined;
  /** Arrival indexes rejected as stale_as_of. */
  stale: number[];
  /** Every (row, version) written, with its content: a version is never reused. */
  written: Map<string, string>;
}

/**
 * Feeds the points in the given batch sizes, flushing after every batch; with `restoreAt`,
 * the actor is rebuilt from its JSON snapshot after that batch and the rest is fed
 * one point per batch (a redo after a crash, batched differently).
 */
function runBatched(
  points: readonly NormalizedCurvePoint[],
  sizes: readonly number[],
  options: { keepAsOfs: number; restoreAt?: number },
): BatchedRun {
  let actor = start(CURVE, undefined, options.keepAsOfs);
  const sink = newSink();
  const stale: number[] = [];
  const written = new Map<string, string>();
  const record = () => {
    const before = sink.writes.length;
    flush(actor, sink);
    for (const w of sink.writes.slice(before)) {
      const row = sink.rows.get(w.slice(0, w.lastIndexOf("@")))!;
      written.set(w, JSON.stringify(row));
    }
  };
  let at = 0;
  const feed = (size: number) => {
    const batch = points.slice(at, at + size);
    send(actor, batch);
    for (const r of rejectedBy(actor)) stale.push(at + r.index);
    at += batch.length;
    record();
  };
  sizes.forEach((size, b) => {
    if (options.restoreAt !== undefined && b > options.restoreAt) return;
    feed(size);
  });
  if (options.restoreAt !== undefined) {
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()));
    actor.stop();
    actor = restore(persisted);
    while (at < points.length) feed(1);
  }
  assert.equal(at, points.length);
  const snapshot = sink.snapshots.get(CURVE);
  actor.stop();
  return { rows: sink.rows, snapshot, stale, written };
}

function assertSameResults(a: BatchedRun, b: BatchedRun, label: string): void {
  assert.deepEqual([...b.rows].sort(), [...a.rows].sort(), `${label}: rows and versions`);
  assert.deepEqual(b.snapshot, a.snapshot, `${label}: snapshot`);
  assert.deepEqual(b.stale, a.stale, `${label}: stale_as_of points`);
  for (const [write, content] of b.written) {
    const other = a.written.get(write);
    if (other !== undefined) assert.equal(content, other, `${label}: ${write} reused`);
  }
}

Deno.test("a 40-date curve backfill gives the same rows, versions and snapshot in any batching, and with any memory that holds its dates", () => {
  const points = backfill(40, 40);
  const expected = expectedCurves(points);
  let reference: BatchedRun | undefined;
  for (const keepAsOfs of [DEFAULT_KEEP_AS_OFS, 40]) {
    for (const [name, sizes] of Object.entries(batchings(points.length, 7))) {
      for (const restoreAt of [undefined, 3]) {
        const label = `keep ${keepAsOfs}, ${name}${restoreAt === undefined ? "" : ", redo"}`;
        const run = runBatched(
          points,
          sizes,
          restoreAt === undefined ? { keepAsOfs } : { keepAsOfs, restoreAt },
        );
        reference ??= run;
        assertSameResults(reference, run, label);
        assert.deepEqual(run.stale, [], label);
        assert.equal(run.rows.size, 40 * 6, label);
        for (const [key, row] of expected.rows) {
          const { version: _, ...got } = run.rows.get(key)!;
          assert.deepEqual(got, row, `${label}: ${key}`);
        }
        const snapshot = expected.snapshots.get(CURVE)!;
        assert.deepEqual(
          { as_of: run.snapshot!.as_of, points: run.snapshot!.points },
          { as_of: snapshot.as_of, points: snapshot.points },
          label,
        );
      }
    }
  }
});

Deno.test("with fewer dates kept than a backfill has, the same points are stale_as_of in any batching and the rest is exact", () => {
  const points = backfill(41, 40);
  for (const keepAsOfs of [1, 8]) {
    let reference: BatchedRun | undefined;
    for (const [name, sizes] of Object.entries(batchings(points.length, 11))) {
      for (const restoreAt of [undefined, 2]) {
        const label = `keep ${keepAsOfs}, ${name}${restoreAt === undefined ? "" : ", redo"}`;
        const run = runBatched(
          points,
          sizes,
          restoreAt === undefined ? { keepAsOfs } : { keepAsOfs, restoreAt },
        );
        reference ??= run;
        assertSameResults(reference, run, label);
        assert.ok(run.stale.length > 0, label);
        // Nothing is dropped silently: each point is in a row's history or stale_as_of. Each
        // row is the winner of the points that were not stale.
        const stale = new Set(run.stale);
        const accepted = points.filter((_, i) => !stale.has(i));
        const expected = expectedCurves(accepted);
        assert.deepEqual([...run.rows.keys()].sort(), [...expected.rows.keys()].sort(), label);
        for (const [key, row] of expected.rows) {
          const { version: _, ...got } = run.rows.get(key)!;
          assert.deepEqual(got, row, `${label}: ${key}`);
        }
        // The newest date is always kept: the snapshot is the one of every point.
        const snapshot = expectedCurves(points).snapshots.get(CURVE)!;
        assert.deepEqual(
          { as_of: run.snapshot!.as_of, points: run.snapshot!.points },
          { as_of: snapshot.as_of, points: snapshot.points },
          label,
        );
      }
    }
  }
});

Deno.test("a curve context persisted by the former 32-date version keeps working and never writes over dates it may have dropped", () => {
  const actor = start();
  const fresh = actor.getPersistedSnapshot() as unknown as { context: Record<string, unknown> };
  actor.stop();
  const asOfs: Record<string, Record<string, unknown>> = {};
  for (let n = 10; n < 42; n++) {
    asOfs[day(n)] = {
      "2027-06": { price: n, event_time_ms: T0 + n, event_id: `o${n}`, version: n - 9 },
    };
  }
  const legacy = JSON.parse(JSON.stringify(fresh));
  legacy.value = "tracking";
  legacy.context = {
    curveId: CURVE,
    versionBase: 0,
    changes: 32,
    asOf: day(41),
    asOfs,
    keepAsOfs: 32,
    changedPoints: [`${day(41)}|2027-06`],
    snapshotChanged: false,
    applied: 40,
    evicted: 3,
  };
  const restored = restore(legacy);
  send(restored, [
    point("old", day(9), "2027-06", 1, T0 + 1e9), // before every kept date: it may have been dropped
    point("kept", day(10), "2027-06", 2, T0 + 1e9),
  ]);
  const ctx = restored.getSnapshot().context;
  assert.deepEqual(rejectedBy(restored).map((r) => [r.index, r.reason]), [[0, "stale_as_of"]]);
  assert.equal(ctx.keepAsOfs, DEFAULT_KEEP_AS_OFS);
  const rows = collect(restored).rows.map((r) => [r.as_of, r.price, r.version]);
  assert.deepEqual(rows, [[day(41), 41, 32], [day(10), 2, 33]]);
  restored.stop();
});

Deno.test("the curve adapter reports stale_as_of points by batch index and writes only the others", () => {
  const adapter = curveAdapter();
  const actor = adapter.spawn(CURVE);
  const keyed = (offset: number, p: NormalizedCurvePoint): KeyedEvent<NormalizedCurvePoint> => ({
    offset,
    appendTimeMs: 0,
    clock: UNDEFINED_CLOCK,
    value: p,
  });
  const history = Array.from(
    { length: DEFAULT_KEEP_AS_OFS + 1 },
    (_, n) => keyed(n, point(`h${n}`, day(n), "2027-06", n, T0 + n)),
  );
  assert.deepEqual(adapter.apply(actor, history), []);
  const rows = adapter.collect(actor, CURVE).curveRows;
  // Day 0 left memory when day 400 came, in this same batch: its row is still written.
  assert.equal(rows.length, DEFAULT_KEEP_AS_OFS + 1);
  assert.deepEqual(rows[0], {
    curve_id: CURVE,
    as_of: day(0),
    tenor: "2027-06",
    price: 0,
    version: 1,
    event_time: Math.floor(T0 / 1000),
    event_time_ms: T0,
    event_id: "h0",
  });
  const late = [
    keyed(500, point("p", day(0), "2027-06", 99, T0 + 1e9)), // no longer kept
    keyed(501, point("q", day(2), "2027-06", 98, T0 + 1e9)), // kept: wins
  ];
  const rejected = adapter.apply(actor, late);
  assert.deepEqual(rejected.map((r) => [r.index, r.reason]), [[0, "stale_as_of"]]);
  const out = adapter.collect(actor, CURVE);
  assert.deepEqual(out.curveRows.map((r) => [r.as_of, r.price, r.version]), [
    [day(2), 98, DEFAULT_KEEP_AS_OFS + 2],
  ]);
  assert.deepEqual(out.projections, []); // an older as_of: ClickHouse only
  assert.equal(adapter.maxVersion(actor), DEFAULT_KEEP_AS_OFS + 2);
  adapter.stop(actor);
});
