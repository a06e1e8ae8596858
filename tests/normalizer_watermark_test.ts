/**
 * Event-time watermarks written by the live normalizer (CONTRACT.md, "Event time") and the
 * future-skew guard, against real Kafka, PostgreSQL and ClickHouse.
 */
import assert from "node:assert/strict";
import { DlqRecord } from "../messages/dlq_record.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { CONTROL_HEADER, isControlRecord, WatermarkRecord } from "../messages/watermark.ts";
import { metrics } from "../observability/metrics.ts";
import { createKafka, ensureTopicNames, topicNames } from "../stores/kafka.ts";
import {
  type Harness,
  json,
  openHarness,
  readTopic,
  readTopicUntil,
  type TopicRecord,
  upsertCurve,
  upsertInstrument,
} from "./normalizer_support.ts";
import { freshEnv, pollUntil, type TestEnv } from "./support.ts";

const INSTRUMENT = "power.de.base";

interface Watermark extends TopicRecord {
  value: WatermarkRecord;
}

interface SentTick {
  event_id: string;
  ts: number;
  source_partition: number;
}

/** Produces ticks to one Bronze ticks partition, in one request. */
async function produceTicks(h: Harness, partition: number, ticks: readonly SentTick[]) {
  await h.producer.send({
    topic: h.topics.bronzeTicks,
    acks: -1,
    messages: ticks.map((t) => ({
      partition,
      value: json({
        event_id: t.event_id,
        source: "eex",
        symbol: t.event_id.startsWith("unmapped") ? "NOPE" : "DEBY",
        ts: t.ts,
        price: 10,
        size: 1,
      }),
    })),
  });
}

const ticksOf = (partition: number, round: string, times: number[]): SentTick[] =>
  times.map((ts, i) => ({
    event_id: `${round}-p${partition}-${i}`,
    ts,
    source_partition: partition,
  }));

async function readWatermarks(testEnv: TestEnv, h: Harness): Promise<Watermark[]> {
  const records = await readTopic(
    testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP,
    h.topics.normalizedTicks,
    {
      control: true,
    },
  );
  return records.filter((r) => isControlRecord(r.headers)).map((r) => ({
    ...r,
    value: WatermarkRecord.parse(JSON.parse(r.payload!)),
  }));
}

/** The last watermark of each (normalized partition, source partition). */
function latest(watermarks: readonly Watermark[]): Map<string, Watermark> {
  const last = new Map<string, Watermark>();
  for (const w of watermarks) {
    const k = `${w.partition}/${w.value.source_partition}`;
    if ((last.get(k)?.offset ?? -1) < w.offset) last.set(k, w);
  }
  return last;
}

/** Polls until `accept` holds for the last watermark of every (partition, source) pair. */
function untilEveryPartition(
  testEnv: TestEnv,
  h: Harness,
  opts: { partitions: number; sources: number },
  accept: (w: Watermark) => boolean,
  what: string,
) {
  return pollUntil(what, async () => {
    const all = await readWatermarks(testEnv, h);
    const last = latest(all);
    for (let p = 0; p < opts.partitions; p++) {
      for (let s = 0; s < opts.sources; s++) {
        const w = last.get(`${p}/${s}`);
        if (w === undefined || !accept(w)) return undefined;
      }
    }
    return all;
  }, { timeoutMs: 30_000 });
}

Deno.test("normalizer writes each Bronze partition's watermark into every normalized partition after the ticks it covers", async () => {
  const testEnv = await freshEnv();
  // 4 normalized partitions against 3 Bronze ones: targets and source count must not mix up.
  const admin = createKafka(testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP, "test-topics").admin();
  await admin.connect();
  try {
    const normalizedTicks = topicNames(testEnv.config.DATA_PROC_TOPIC_PREFIX).normalizedTicks;
    await ensureTopicNames(admin, [normalizedTicks], 4);
  } finally {
    await admin.disconnect();
  }
  const h = await openHarness(testEnv, 3);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: INSTRUMENT });
    await h.startNormalizer();
    const base = Date.now() - 3_600_000;
    const sent: SentTick[] = [];
    const maxOf = (round: string, s: number) =>
      Math.max(...sent.filter((t) => t.event_id.startsWith(`${round}-p${s}-`)).map((t) => t.ts));

    for (const [round, offset] of [["r1", 0], ["r2", 60_000]] as const) {
      for (let s = 0; s < 3; s++) {
        // The greatest time is not the last one: the watermark is a max, not the latest.
        const ticks = ticksOf(s, round, [30, 10, 20].map((d) => base + offset + s * 1000 + d));
        sent.push(...ticks);
        // An unmapped tick (DLQ) later than all of them must not move the watermark.
        await produceTicks(h, s, [...ticks, {
          event_id: `unmapped-${round}-${s}`,
          ts: base + 3_000_000,
          source_partition: s,
        }]);
      }
      await untilEveryPartition(
        testEnv,
        h,
        { partitions: 4, sources: 3 },
        (w) => w.value.watermark_ms === maxOf(round, w.value.source_partition),
        `${round} watermarks in all 4 partitions`,
      );
    }

    const watermarks = await readWatermarks(testEnv, h);
    const silver = (await readTopic(bootstrap, h.topics.normalizedTicks)).map((r) => ({
      ...r,
      event: NormalizedTick.parse(JSON.parse(r.payload!)),
    }));
    assert.equal(silver.length, sent.length);
    const tickPartition = silver[0]!.partition; // one instrument: one partition holds them all
    assert.ok(silver.every((r) => r.partition === tickPartition));
    const sourceOf = new Map(sent.map((t) => [t.event_id, t.source_partition]));

    for (const w of watermarks) {
      assert.equal(w.headers[CONTROL_HEADER], "watermark");
      assert.equal(w.key, null);
      assert.equal(w.value.source_topic, h.topics.bronzeTicks);
      assert.equal(w.value.source_partitions, 3);
      assert.equal(w.value.idle, false);
      // Written after its ticks: a tick of that source with exactly that event time is
      // earlier in the log (same partition) or was appended no later (other partitions).
      const covered = silver.filter((t) =>
        sourceOf.get(t.event.event_id) === w.value.source_partition &&
        t.event.event_time_ms === w.value.watermark_ms &&
        (w.partition === tickPartition ? t.offset < w.offset : t.ts <= w.ts)
      );
      assert.ok(covered.length > 0, `watermark ahead of its ticks: ${JSON.stringify(w)}`);
    }
    // Per normalized partition and source, watermarks never move back.
    const seen = new Map<string, number>();
    for (const w of [...watermarks].sort((a, b) => a.offset - b.offset)) {
      const k = `${w.partition}/${w.value.source_partition}`;
      assert.ok((seen.get(k) ?? -Infinity) <= w.value.watermark_ms!, `moved back at ${k}`);
      seen.set(k, w.value.watermark_ms!);
    }
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer reports an empty Bronze partition idle, a quiet one idle with its last watermark, and active again on new ticks", async () => {
  const testEnv = await freshEnv({
    DATA_PROC_IDLE_CLOSE_MS: "1500",
    DATA_PROC_WATERMARK_INTERVAL_MS: "200",
  });
  const h = await openHarness(testEnv, 3);
  try {
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: INSTRUMENT });
    const idleBefore = await transitions("idle");
    const activeBefore = await transitions("active");
    const startedAt = Date.now();
    await h.startNormalizer();
    const t0 = Date.now() - 60_000;
    const producedAt = Date.now();
    await produceTicks(h, 0, ticksOf(0, "a", [t0]));

    // Sources 1 and 2 never receive anything; source 0 stops after one tick.
    const expectedIdle = (s: number) => s === 0 ? t0 : null;
    const all = await untilEveryPartition(
      testEnv,
      h,
      { partitions: 3, sources: 3 },
      (w) => w.value.idle && w.value.watermark_ms === expectedIdle(w.value.source_partition),
      "every source idle in every partition",
    );
    for (const w of all.filter((x) => x.value.idle)) {
      const from = w.value.source_partition === 0 ? producedAt : startedAt;
      assert.ok(w.value.wall_ms >= from + 1500, `idle too early: ${JSON.stringify(w.value)}`);
      assert.equal(w.value.watermark_ms, expectedIdle(w.value.source_partition));
    }
    // While source 0 was active (before idle) its watermark was written without the flag.
    for (let p = 0; p < 3; p++) {
      const own = all.filter((w) => w.partition === p && w.value.source_partition === 0);
      assert.deepEqual(own[0]?.value.idle, false, `partition ${p}: first record of source 0`);
      assert.equal(own[0]?.value.watermark_ms, t0);
    }

    // New ticks make source 0 active again, written after its idle records.
    const lastIdle = latest(all);
    const t1 = t0 + 5000;
    await produceTicks(h, 0, ticksOf(0, "b", [t1]));
    await untilEveryPartition(
      testEnv,
      h,
      { partitions: 3, sources: 3 },
      (w) =>
        w.value.source_partition !== 0 ||
        (!w.value.idle && w.value.watermark_ms === t1 &&
          w.offset > lastIdle.get(`${w.partition}/0`)!.offset),
      "source 0 active again with its new watermark",
    );
    assert.ok((await transitions("idle")) - idleBefore >= 3);
    assert.ok((await transitions("active")) - activeBefore >= 1);
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer sends a tick or curve point far ahead of its record timestamp to the DLQ as invalid ts, without moving the watermark", async () => {
  const testEnv = await freshEnv({ DATA_PROC_MAX_FUTURE_SKEW_MS: "60000" });
  const h = await openHarness(testEnv, 3);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: INSTRUMENT });
    await upsertCurve(h.sql, { source: "eex", curve: "DE_BASE", curve_id: "power.de.fwd" });
    await h.startNormalizer();
    const now = Date.now();
    const ok = { event_id: "ok", ts: now - 5000, source_partition: 0 };
    const ahead = { event_id: "ahead", ts: now + 3_600_000, source_partition: 0 };
    await produceTicks(h, 0, [ok, ahead]);
    await h.producer.send({
      topic: h.topics.bronzeCurves,
      acks: -1,
      messages: [{
        value: json({
          event_id: "c-ahead",
          source: "eex",
          curve: "DE_BASE",
          as_of: "2027-01-15",
          tenor: "2027-02",
          price: 1,
          ts: now + 3_600_000,
        }),
      }],
    });

    const dlq = (await readTopicUntil(bootstrap, h.topics.dlq, 2, pollUntil))
      .map((r) => DlqRecord.parse(JSON.parse(r.payload!)));
    assert.deepEqual(
      dlq.map((d) => d.source_topic).sort(),
      [
        h.topics.bronzeCurves,
        h.topics.bronzeTicks,
      ].sort(),
    );
    for (const d of dlq) {
      assert.equal(d.reason, "invalid_payload");
      assert.match(d.message, /^ts: \d+ is \d+ ms ahead of the record timestamp \d+/);
    }
    assert.equal(
      String(dlq.find((d) => d.source_topic === h.topics.bronzeTicks)?.source_offset),
      "1",
    );

    const watermarks = await untilEveryPartition(
      testEnv,
      h,
      { partitions: 3, sources: 1 },
      (w) => w.value.watermark_ms === ok.ts,
      "source 0 watermark at the valid tick",
    );
    const fromSource0 = watermarks.filter((w) => w.value.source_partition === 0);
    assert.ok(fromSource0.every((w) => w.value.watermark_ms === ok.ts));
    const silver = await readTopic(bootstrap, h.topics.normalizedTicks);
    assert.deepEqual(silver.map((r) => NormalizedTick.parse(JSON.parse(r.payload!)).event_id), [
      "ok",
    ]);
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

async function transitions(state: "idle" | "active"): Promise<number> {
  const metric = await metrics.sourceIdleTransitions.get();
  return metric.values.filter((v) => v.labels.state === state)
    .reduce((sum, v) => sum + v.value, 0);
}
