/**
 * Partition supervisor behaviour with a real Redis actor store: poison events, one-for-one
 * restarts that rebuild a crashed actor exactly, and neighbours that keep running; the
 * event-time clock read from the watermark records in the partition.
 */
import assert from "node:assert/strict";
import type { KafkaMessage } from "kafkajs";
import { assertEvent, enqueueActions } from "xstate";
import type { KindAdapter } from "../actors/actor_kinds.ts";
import { instrumentAdapter, instrumentMachine } from "../actors/kinds/instrument/machine.ts";
import { applyTicks } from "../actors/kinds/instrument/aggregate.ts";
import type { Bar } from "../messages/bar.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { CONTROL_HEADER, WATERMARK_CONTROL, type WatermarkRecord } from "../messages/watermark.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import {
  INSTRUMENT_PARAMS,
  instrumentPartition,
  PARTITION_TOPIC,
  type PartitionOptionsOf,
} from "../tests/partition_fixture.ts";
import { uniqueId } from "../tests/support.ts";
import {
  ActorCrashEscalation,
  type PartitionFlushPlan,
  PartitionSupervisor,
  recordKeysOf,
} from "./partition_supervisor.ts";

/** The instrument machine, but throwing on any event whose id starts with "poison". */
const fragileMachine = instrumentMachine.provide({
  actions: {
    apply: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "EVENTS");
      if (event.inputs.some((i) => i.tick.event_id.startsWith("poison"))) {
        throw new Error("machine cannot digest this event");
      }
      const rejections = applyTicks(context, event.inputs);
      if (rejections.length > 0) enqueue.emit({ type: "rejected", rejections });
    }),
  },
});

function fragileAdapter(): KindAdapter<NormalizedTick> {
  return instrumentAdapter(INSTRUMENT_PARAMS, fragileMachine);
}

/** Partition 0 of the tick topic with the real instrument adapter, unless `extra` says otherwise. */
/** A partition supervisor of the fragile machine. */
function fragileSupervisor(
  store: ActorStore,
  extra: Partial<PartitionOptionsOf> = {},
): PartitionSupervisor<NormalizedTick> {
  return instrumentPartition(store, { adapter: fragileAdapter(), ...extra });
}

function message(offset: number, instrument: string, eventId: string, price: number): KafkaMessage {
  return tickMessage(offset, instrument, eventId, 1_700_000_000_000 + offset * 1000, price);
}

function tickMessage(
  offset: number,
  instrument: string,
  eventId: string,
  eventTimeMs: number,
  price: number,
): KafkaMessage {
  const tick: NormalizedTick = {
    event_id: eventId,
    instrument_id: instrument,
    event_time_ms: eventTimeMs,
    price,
    size: 1,
    source: "test",
    symbol: instrument,
    commodity: null,
    region: null,
    currency: null,
    unit: null,
    ingest_time_ms: 0,
  };
  const value = new TextEncoder().encode(JSON.stringify(tick));
  return {
    key: null,
    value: value as unknown as KafkaMessage["value"],
    timestamp: String(Date.now()),
    attributes: 0,
    offset: String(offset),
    headers: {},
  } as KafkaMessage;
}

Deno.test({
  name: "newKeys counts the distinct record keys not live, and each keyless record",
  sanitizeOps: false,
  fn: async () => {
    const redis = createRedis("redis://127.0.0.1:6379/0");
    try {
      const p = instrumentPartition(new ActorStore(redis, redisKeys(`t${uniqueId()}:`, "g")));
      const keyed = (offset: number, key: string) => ({
        ...message(offset, key, `e${offset}`, 10),
        key: new TextEncoder().encode(key) as unknown as KafkaMessage["key"],
      });
      await p.handle([keyed(0, "A"), keyed(1, "B")]);
      const watermark = {
        ...keyed(5, "W"),
        headers: { [CONTROL_HEADER]: new TextEncoder().encode(WATERMARK_CONTROL) },
      } as unknown as KafkaMessage;
      const next = [
        keyed(2, "A"),
        keyed(3, "C"),
        keyed(4, "C"),
        watermark,
        message(6, "D", "d", 1),
      ];
      // C once (twice in the batch), the keyless record; not A (live), not the watermark.
      assert.equal(p.newKeys(recordKeysOf(next)), 2);
      await p.stop();
    } finally {
      await redis.quit();
    }
  },
});

Deno.test({
  name: "a key's first crash escalates to its partition, naming the key",
  sanitizeOps: false,
  fn: async () => {
    const redis = createRedis("redis://127.0.0.1:6379/0");
    try {
      const p = fragileSupervisor(new ActorStore(redis, redisKeys(`t${uniqueId()}:`, "g")));
      await p.handle([message(0, "A", "a0", 10), message(1, "B", "b1", 20)]);
      // Its events since the snapshot were not kept: only a re-read of the partition rebuilds A.
      await assert.rejects(
        p.handle([message(2, "A", "poison-2", 99)]),
        (err: unknown) => err instanceof ActorCrashEscalation && err.key === "A",
      );
      await p.stop();
    } finally {
      await redis.quit();
    }
  },
});

Deno.test({
  name:
    "a poison event of a watched key is retried, then sent to the DLQ, while its key and neighbours keep going",
  // ioredis may leave its own connect timer pending for a moment after quit().
  sanitizeOps: false,
  fn: async () => {
    const redis = createRedis("redis://127.0.0.1:6379/0");
    const prefix = `t${uniqueId()}:`;
    try {
      const store = new ActorStore(redis, redisKeys(prefix, "g"));
      const adapter = fragileAdapter();
      const p = fragileSupervisor(store, {
        adapter,
        poisonRetries: 2,
        watchedKeys: new Set(["A"]),
      });
      await p.handle([message(0, "A", "a0", 10), message(1, "B", "b1", 20)]);
      await p.handle([
        message(2, "A", "a2", 11),
        message(3, "A", "poison-3", 99),
        message(4, "B", "b4", 21),
        message(5, "A", "a5", 12),
      ]);
      const plan = await p.plan({ snapshot: true });
      assert.deepEqual(
        plan.dlq.map((d) => [d.reason, d.source_offset]),
        [["poison_event", "3"]],
      );
      const latest = (key: string) =>
        JSON.parse(
          plan.outputs.projections.find((x) => x.key === `projection:latest:${key}`)!.value,
        );
      assert.equal(latest("A").event_id, "a5");
      assert.equal(latest("B").event_id, "b4");
      const bar = JSON.parse(
        plan.outputs.projections.find((x) => x.key === "projection:bar:1m:A")!.value,
      );
      assert.equal(bar.count, 3); // a0, a2, a5: rebuilt exactly, the poison event left out
      assert.equal(p.actor("A")!.restarts, 1);
      assert.equal(plan.commitOffset, 6);
      // Every attempt's machine was stopped: none is left behind in the adapter's system.
      assert.equal(adapter.machines(), 2);
      await p.stop();
      assert.equal(adapter.machines(), 0);
    } finally {
      await redis.quit();
    }
  },
});

// ---------------------------------------------------------------------------------------
// Event time from the watermark records in the partition. These tests also use the real
// Redis store (with sanitizeOps off for ioredis's connect timer, as above).

const TOPIC = PARTITION_TOPIC;
const SOURCE = "ingestion.market.ticks.v1";
const SEC = 1_000;
const MIN = 60_000;
/** 2027-01-15T10:00:00Z: aligned to the minute. */
const T0 = Date.UTC(2027, 0, 15, 10, 0, 0);
const LATENESS = INSTRUMENT_PARAMS.allowedLatenessMs;

/**
 * A watermark record as the normalizer writes it into the partition (`dp-control` header,
 * WatermarkRecord value); one source partition unless told otherwise.
 */
function watermarkMessage(
  offset: number,
  watermarkMs: number | null,
  options: { idle?: boolean; wallMs?: number; sourcePartition?: number; sources?: number } = {},
): KafkaMessage {
  const record: WatermarkRecord = {
    type: "watermark",
    source_topic: SOURCE,
    source_partition: options.sourcePartition ?? 0,
    watermark_ms: watermarkMs,
    idle: options.idle ?? false,
    wall_ms: options.wallMs ?? T0,
    source_partitions: options.sources ?? 1,
  };
  return {
    key: null,
    value: new TextEncoder().encode(JSON.stringify(record)) as unknown as KafkaMessage["value"],
    timestamp: String(T0),
    attributes: 0,
    offset: String(offset),
    headers: { [CONTROL_HEADER]: WATERMARK_CONTROL },
  } as KafkaMessage;
}

interface ClockHarness {
  store: ActorStore;
  /** Claims the partition (a new epoch) and starts a supervisor with the real adapter. */
  partition(
    partition: number,
    extra?: Partial<PartitionOptionsOf>,
  ): Promise<PartitionSupervisor<NormalizedTick>>;
  /** Plans with snapshots, writes the plan to Redis as the flush path does, commits. */
  flush(p: PartitionSupervisor<NormalizedTick>): Promise<PartitionFlushPlan>;
}

/** Runs `fn` against a real Redis under a fresh prefix, deleting its keys afterwards. */
async function withRedis(fn: (h: ClockHarness) => Promise<void>): Promise<void> {
  const redis = createRedis("redis://127.0.0.1:6379/0");
  const prefix = `t${uniqueId()}:`;
  const started: PartitionSupervisor<NormalizedTick>[] = [];
  try {
    const store = new ActorStore(redis, redisKeys(prefix, "g"));
    await fn({
      store,
      async partition(partition, extra = {}) {
        const epoch = await store.claim(TOPIC, partition);
        const p = instrumentPartition(store, { partition, epoch, ...extra });
        started.push(p);
        return p;
      },
      async flush(p) {
        const plan = await p.plan({ snapshot: true });
        const ok = await store.fencedFlush(p.topic, p.partition, p.epoch, {
          // Prefixed as the flush path does, so the test's cleanup removes them.
          projections: plan.outputs.projections.map((x) => ({
            ...x,
            key: store.keys.prefixed(x.key),
          })),
          snapshots: plan.snapshots,
        });
        assert.ok(ok, "fenced out");
        p.flushed(plan);
        return plan;
      },
    });
  } finally {
    for (const p of started) await p.stop();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  }
}

/** The bars a plan writes (its ClickHouse rows), by `${instrument_id}|${start_ms}`. */
function barsOf(plan: PartitionFlushPlan): Map<string, Bar> {
  const bars = new Map<string, Bar>();
  for (const row of plan.outputs.barRows) {
    const bar = { ...row, final: row.final === 1 } as unknown as Bar;
    bars.set(`${bar.instrument_id}|${bar.start_ms}`, bar);
  }
  return bars;
}

Deno.test({
  name:
    "partition judges each event by the clock at its offset: after a watermark that moved it far ahead an event is late, before it not",
  sanitizeOps: false,
  fn: () =>
    withRedis(async (h) => {
      const p = await h.partition(0);
      await p.handle([
        watermarkMessage(0, T0),
        tickMessage(1, "A", "a1", T0 + 1 * SEC, 10),
        tickMessage(2, "B", "b2", T0 + 10 * SEC, 20),
        watermarkMessage(3, T0 + 10 * MIN), // the clock jumps ten minutes
        tickMessage(4, "A", "a-old", T0 + 1 * SEC, 13),
        tickMessage(5, "A", "a5", T0 + 10 * MIN, 11),
      ]);
      assert.deepEqual(p.clock, { clockMs: T0 + 10 * MIN, quietMs: null });
      const plan = await h.flush(p);
      assert.deepEqual(plan.dlq.map((d) => [d.reason, d.source_offset]), [["late_event", "4"]]);
      const bars = barsOf(plan);
      assert.equal(bars.get(`A|${T0}`)!.count, 1);
      // B got no more events: the watermark at offset 3 closed its bar, as it did A's.
      assert.equal(bars.get(`B|${T0}`)!.final, true);
      assert.equal(bars.get(`A|${T0}`)!.final, true);
      assert.equal(bars.get(`A|${T0 + 10 * MIN}`)!.final, false);
      assert.deepEqual(
        plan.outputs.messages.filter((m) => m.topic === "bars").map((m) => m.key).sort(),
        ["A", "B"],
      );
      assert.equal(p.pendingKeys, 1); // A's open bar at T0+10m
      assert.equal(plan.commitOffset, 6);
    }),
});

Deno.test({
  name: "partition counts the same event when it comes before the watermark that moves the clock",
  sanitizeOps: false,
  fn: () =>
    withRedis(async (h) => {
      const p = await h.partition(0);
      await p.handle([
        watermarkMessage(0, T0),
        tickMessage(1, "A", "a1", T0 + 1 * SEC, 10),
        tickMessage(2, "B", "b2", T0 + 10 * SEC, 20),
        tickMessage(3, "A", "a-old", T0 + 1 * SEC, 13),
        watermarkMessage(4, T0 + 10 * MIN),
        tickMessage(5, "A", "a5", T0 + 10 * MIN, 11),
      ]);
      const plan = await h.flush(p);
      assert.deepEqual(plan.dlq, []);
      const a = barsOf(plan).get(`A|${T0}`)!;
      assert.deepEqual([a.count, a.final, a.open, a.close], [2, true, 13, 10]); // (t, id) order
      assert.equal(barsOf(plan).get(`B|${T0}`)!.final, true);
    }),
});

Deno.test({
  name: "partition with no watermark yet judges nothing late and closes nothing",
  sanitizeOps: false,
  fn: () =>
    withRedis(async (h) => {
      const p = await h.partition(0);
      await p.handle([
        tickMessage(0, "A", "a0", T0 + 2 * MIN, 10),
        tickMessage(1, "A", "a1", T0, 11),
        // Two source partitions, one heard from: the clock is still undefined.
        watermarkMessage(2, T0 + 10 * MIN, { sources: 2 }),
        tickMessage(3, "A", "a3", T0 + 1, 12),
      ]);
      assert.deepEqual(p.clock, { clockMs: null, quietMs: null });
      const plan = await h.flush(p);
      assert.deepEqual(plan.dlq, []);
      assert.ok([...barsOf(plan).values()].every((b) => !b.final));
      assert.equal(barsOf(plan).get(`A|${T0}`)!.count, 2);
      // The second source reports: the clock is the minimum of the two.
      await p.handle([
        watermarkMessage(4, T0 + MIN + LATENESS, { sources: 2, sourcePartition: 1 }),
      ]);
      assert.equal(p.clock.clockMs, T0 + MIN + LATENESS);
      const next = barsOf(await h.flush(p));
      assert.equal(next.get(`A|${T0}`)!.final, true);
      assert.equal(next.has(`A|${T0 + 2 * MIN}`), false); // unchanged: not written again
    }),
});

Deno.test({
  name:
    "partition closes a key that gets no more events when a later watermark passes end + lateness, reviving it if passivated",
  sanitizeOps: false,
  fn: () =>
    withRedis(async (h) => {
      let windowsClosed = 0;
      const p = await h.partition(0, { onWindowClosed: () => windowsClosed++ });
      await p.handle([watermarkMessage(0, T0), tickMessage(1, "B", "b1", T0 + 10 * SEC, 20)]);
      await h.flush(p);
      assert.equal(await p.passivate({ idleMs: 0, maxLive: 0, now: Date.now() }), 1);
      assert.equal(p.liveActors, 0);
      assert.equal(p.pendingKeys, 1);

      // One millisecond short: nothing closes, nothing is revived.
      await p.handle([watermarkMessage(2, T0 + MIN + LATENESS - 1)]);
      assert.equal(p.liveActors, 0);
      assert.equal(windowsClosed, 0);
      const none = await h.flush(p);
      assert.deepEqual(none.outputs.barRows, []);

      await p.handle([watermarkMessage(3, T0 + MIN + LATENESS)]);
      assert.equal(windowsClosed, 1);
      assert.equal(p.pendingKeys, 0);
      const plan = await h.flush(p);
      const bar = barsOf(plan).get(`B|${T0}`)!;
      assert.deepEqual([bar.final, bar.count, bar.version], [true, 1, 3]);
      assert.equal(plan.outputs.messages.filter((m) => m.topic === "bars").length, 1);
      assert.equal(plan.commitOffset, 4);
    }),
});

Deno.test({
  name:
    "partition restored from its stored state keeps its clock and closes the keys it was waiting on",
  sanitizeOps: false,
  fn: () =>
    withRedis(async (h) => {
      const p = await h.partition(0);
      await p.handle([
        watermarkMessage(0, T0),
        tickMessage(1, "B", "b1", T0 + 10 * SEC, 20),
        watermarkMessage(2, T0 + 30 * SEC),
      ]);
      await h.flush(p);
      await p.stop();

      const persisted = await h.store.loadPartition(TOPIC, 0);
      assert.ok(persisted);
      assert.equal(persisted.offset, 2);
      assert.equal(persisted.clock.clock_ms, T0 + 30 * SEC);
      assert.deepEqual(persisted.pending, { B: T0 + MIN + LATENESS });
      const q = await h.partition(0, { persisted });
      assert.deepEqual(q.clock, { clockMs: T0 + 30 * SEC, quietMs: null });
      // A redelivered watermark already in the stored clock is skipped; a late event is
      // late by the restored clock.
      await q.handle([
        watermarkMessage(2, T0 + 30 * SEC),
        tickMessage(3, "C", "c3", T0 + 30 * SEC - LATENESS - 1, 5),
        watermarkMessage(4, T0 + 2 * MIN),
      ]);
      const plan = await h.flush(q);
      assert.deepEqual(plan.dlq.map((d) => [d.reason, d.source_offset]), [["late_event", "3"]]);
      assert.equal(barsOf(plan).get(`B|${T0}`)!.final, true);
      assert.equal(q.pendingKeys, 0);
    }),
});

Deno.test({
  name:
    "partition quiet-closes bars when every source is idle; a later event within lateness corrects the final bar",
  sanitizeOps: false,
  fn: () =>
    withRedis(async (h) => {
      const p = await h.partition(0);
      await p.handle([
        watermarkMessage(0, T0 + 10 * SEC),
        tickMessage(1, "A", "a1", T0 + 8 * SEC, 10),
        // Every source idle; quiet time at end + lateness: not yet.
        watermarkMessage(2, T0 + 10 * SEC, { idle: true, wallMs: T0 + MIN + LATENESS }),
      ]);
      assert.deepEqual(p.clock, { clockMs: T0 + 10 * SEC, quietMs: T0 + MIN + LATENESS });
      assert.equal(barsOf(await h.flush(p)).get(`A|${T0}`)!.final, false);

      await p.handle([
        watermarkMessage(3, T0 + 10 * SEC, { idle: true, wallMs: T0 + MIN + LATENESS + 1 }),
      ]);
      const closed = barsOf(await h.flush(p)).get(`A|${T0}`)!;
      assert.deepEqual([closed.final, closed.count, closed.version], [true, 1, 3]);

      // The source is active again; the clock kept its value, so T0+6s is within lateness.
      await p.handle([
        watermarkMessage(4, T0 + 10 * SEC),
        tickMessage(5, "A", "a5", T0 + 6 * SEC, 20),
      ]);
      const plan = await h.flush(p);
      assert.deepEqual(plan.dlq, []);
      const corrected = barsOf(plan).get(`A|${T0}`)!;
      assert.deepEqual([corrected.final, corrected.count, corrected.open], [true, 2, 20]);
      assert.ok(corrected.version > closed.version);
      assert.equal(p.actor("A")!.inspect().state, "closed");
    }),
});

Deno.test({
  name: "a key revived only to close its bar passivates before a key that just had an event",
  sanitizeOps: false,
  fn: () =>
    withRedis(async (h) => {
      let nowMs = 1_000;
      const p = await h.partition(0, { now: () => nowMs });
      await p.handle([watermarkMessage(0, T0), tickMessage(1, "B", "b1", T0 + 1 * SEC, 20)]);
      await h.flush(p); // B's snapshot stored at 1000
      await p.passivate({ idleMs: 1e9, maxLive: 0, now: nowMs });
      assert.equal(p.actor("B"), undefined);

      nowMs = 5_000;
      await p.handle([tickMessage(2, "A", "a2", T0 + 30 * SEC, 10)]);
      nowMs = 6_000;
      await p.handle([watermarkMessage(3, T0 + 2 * MIN)]); // B is revived to close its bar
      assert.ok(p.actor("B"), "B revived for its close");
      await h.flush(p);
      // Over a cap of one: B, active as of its snapshot, goes; A, which had an event, stays.
      await p.passivate({ idleMs: 1e9, maxLive: 1, now: 7_000 });
      assert.ok(p.actor("A"), "A passivated before B");
      assert.equal(p.actor("B"), undefined);
    }),
});

Deno.test({
  name: "a partition's snapshot schedule starts where it is told and moves on snapshot plans only",
  sanitizeOps: false,
  fn: async () => {
    const redis = createRedis("redis://127.0.0.1:6379/0");
    let now = 1_000_000;
    try {
      const p = instrumentPartition(new ActorStore(redis, redisKeys(`t${uniqueId()}:`, "g")), {
        now: () => now,
        lastSnapshotMs: 997_000,
      });
      await p.handle([message(0, "A", "a0", 10)]);
      now += 1000;
      const projections = await p.plan({ snapshot: false });
      assert.equal(projections.snapshots.length, 0);
      assert.equal(p.lastSnapshotMs, 997_000);
      now += 1000;
      const snapshots = await p.plan({ snapshot: true });
      assert.ok(snapshots.snapshots.length > 0);
      assert.equal(p.lastSnapshotMs, 1_002_000);
      await p.stop();
    } finally {
      await redis.quit();
    }
  },
});
