/**
 * Batches that a store refuses as a whole, against real Kafka, PostgreSQL and ClickHouse:
 * the normalizer must write them in pieces the stores accept (or DLQ what no store can take),
 * never retry one request forever, and commit every Bronze offset.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Kafka } from "kafkajs";
import { DlqRecord } from "../messages/dlq_record.ts";
import { createLogger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { createClickHouse, queryRows } from "../stores/clickhouse.ts";
import { startNormalizer } from "../supervisors/normalizer_supervisor.ts";
import {
  type Harness,
  json,
  openHarness,
  readTopic,
  silverCounts,
  upsertInstrument,
} from "./normalizer_support.ts";
import { freshEnv, pollUntil, type TestEnv } from "./support.ts";

/** Records not yet committed by the group, over every partition of the topics. */
async function lag(kafka: Kafka, groupId: string, topics: readonly string[]): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    let total = 0;
    for (const topic of topics) {
      const ends = await admin.fetchTopicOffsets(topic);
      const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
      for (const end of ends) {
        const c = committed?.partitions.find((p) => p.partition === end.partition)?.offset;
        total += Math.max(0, Number(end.high) - Math.max(0, Number(c ?? -1)));
      }
    }
    return total;
  } finally {
    await admin.disconnect();
  }
}

/** Polls until the normalizer has committed every record of both Bronze topics. */
async function untilCaughtUp(testEnv: TestEnv, h: Harness, timeoutMs = 90_000): Promise<void> {
  const groupId = `${testEnv.config.DATA_PROC_GROUP_ID}.normalizer`;
  await pollUntil(
    "normalizer lag 0 on the Bronze topics",
    async () =>
      (await lag(h.kafka, groupId, [h.topics.bronzeTicks, h.topics.bronzeCurves])) === 0
        ? true
        : undefined,
    { timeoutMs, intervalMs: 250 },
  );
}

const dlqOf = async (testEnv: TestEnv, h: Harness) =>
  (await readTopic(testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP, h.topics.dlq)).map((r) => ({
    record: r,
    envelope: DlqRecord.parse(JSON.parse(r.payload!)),
  }));

Deno.test("normalizer sends 1,000 invalid 2 KB records of one partition to the DLQ in requests the broker accepts", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    const COUNT = 1000;
    // Invalid (no price), 2 KB each: their envelopes share one DLQ key, so ~3 MB of DLQ
    // records head for one partition; a single request that size is over message.max.bytes.
    const values = Array.from({ length: COUNT }, (_, i) => {
      const head = { event_id: `bad-${i}`, source: "eex", symbol: "DEBY", ts: 0, size: 1 };
      const pad = "x".repeat(2048 - json({ ...head, pad: "" }).length);
      const v = Buffer.from(json({ ...head, pad }));
      assert.equal(v.length, 2048);
      return v;
    });
    for (let i = 0; i < COUNT; i += 200) {
      await h.producer.send({
        topic: h.topics.bronzeTicks,
        acks: -1,
        messages: values.slice(i, i + 200).map((value) => ({ partition: 1, value })),
      });
    }
    await h.startNormalizer();
    await untilCaughtUp(testEnv, h);

    const dlq = await dlqOf(testEnv, h);
    assert.equal(dlq.length, COUNT);
    // One DLQ partition, in Bronze offset order, each with the original bytes.
    assert.equal(new Set(dlq.map((d) => d.record.partition)).size, 1);
    assert.deepEqual(
      dlq.map((d) => d.envelope.source_offset),
      values.map((_, i) => String(i)),
    );
    for (const { envelope } of dlq) {
      assert.equal(envelope.reason, "invalid_payload");
      assert.equal(envelope.source_partition, 1);
      assert.deepEqual(
        Buffer.from(envelope.value_b64!, "base64"),
        values[Number(envelope.source_offset)],
      );
    }
    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "ticks"), { rows: 0, distinct: 0 });
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer writes a batch of ticks spanning 150 months into silver.ticks in blocks of few partitions", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    const MONTHS = 150;
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: "p" });
    // 2010-01 .. 2022-06, one tick per month, in one partition and one request: one batch.
    await h.producer.send({
      topic: h.topics.bronzeTicks,
      acks: -1,
      messages: Array.from({ length: MONTHS }, (_, m) => ({
        partition: 0,
        value: json({
          event_id: `m-${m}`,
          source: "eex",
          symbol: "DEBY",
          ts: Date.UTC(2010, m, 15, 12),
          price: m,
          size: 1,
        }),
      })),
    });
    await h.startNormalizer();
    await untilCaughtUp(testEnv, h);

    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "ticks"), {
      rows: MONTHS,
      distinct: MONTHS,
    });
    const [months] = await queryRows<{ n: string; lo: string; hi: string }>(
      h.ch,
      `SELECT uniqExact(toYYYYMM(event_time)) AS n, min(toYYYYMM(event_time)) AS lo,
              max(toYYYYMM(event_time)) AS hi FROM ${h.silverDb}.ticks FINAL`,
    );
    assert.deepEqual(
      [Number(months?.n), Number(months?.lo), Number(months?.hi)],
      [MONTHS, 201001, 202206],
    );
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    assert.equal((await readTopic(bootstrap, h.topics.normalizedTicks)).length, MONTHS);
    assert.equal((await readTopic(bootstrap, h.topics.dlq)).length, 0);
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer DLQs a record whose envelope is over the broker's limit without its bytes, and moves on", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: "p" });
    const tick = (id: string) =>
      json({
        event_id: id,
        source: "eex",
        symbol: "DEBY",
        ts: 1_500_000_000_000,
        price: 1,
        size: 1,
      });
    // 900 KB is a valid Kafka record, but as base64 in a DLQ envelope it is 1.2 MB: more than
    // the broker takes in any request. It is invalid (no price), so it can only go to the DLQ.
    const huge = json({ event_id: "huge", source: "eex", pad: "y".repeat(900_000) });
    await h.producer.send({
      topic: h.topics.bronzeTicks,
      acks: -1,
      messages: [tick("before"), huge, tick("after")].map((value) => ({
        partition: 2,
        key: "k",
        value,
      })),
    });
    await h.startNormalizer();
    await untilCaughtUp(testEnv, h);

    const dlq = await dlqOf(testEnv, h);
    assert.equal(dlq.length, 1);
    const { envelope } = dlq[0]!;
    assert.equal(envelope.source_offset, "1");
    assert.equal(envelope.source_partition, 2);
    assert.equal(envelope.reason, "write_failed");
    assert.equal(envelope.key_b64, null);
    assert.equal(envelope.value_b64, null);
    assert.match(envelope.message, /invalid_payload/);
    assert.match(envelope.message, /MESSAGE_TOO_LARGE/);
    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "ticks"), { rows: 2, distinct: 2 });
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

/**
 * A TCP proxy to ClickHouse that can be taken down and brought back on the same port: a
 * real outage (connection refused) for a client that keeps the proxy's address.
 */
function clickHouseProxy(target: { hostname: string; port: number }) {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  let listener: Deno.Listener | undefined;
  let serving: Promise<void> | undefined;
  const conns = new Set<Deno.Conn>();
  const pipes = new Set<Promise<void>>();
  const track = (p: Promise<void>) => {
    pipes.add(p);
    p.finally(() => pipes.delete(p));
  };
  const closeConn = (c: Deno.Conn) => {
    if (!conns.delete(c)) return;
    try {
      c.close();
    } catch { /* already closed */ }
  };
  const relay = async (from: Deno.Conn, to: Deno.Conn) => {
    try {
      await from.readable.pipeTo(to.writable, { preventClose: true });
    } catch { /* the other side went away */ }
    closeConn(from);
    closeConn(to);
  };
  return {
    url: `http://127.0.0.1:${port}`,
    up() {
      const l = Deno.listen({ hostname: "127.0.0.1", port });
      listener = l;
      serving = (async () => {
        try {
          for await (const client of l) {
            conns.add(client);
            try {
              const upstream = await Deno.connect(target);
              conns.add(upstream);
              track(relay(client, upstream));
              track(relay(upstream, client));
            } catch {
              closeConn(client);
            }
          }
        } catch { /* listener closed */ }
      })();
    },
    async down() {
      listener?.close();
      listener = undefined;
      await serving;
      for (const c of [...conns]) closeConn(c);
      await Promise.all([...pipes]);
    },
  };
}

async function normalizerRestarts(): Promise<number> {
  const metric = await metrics.actorRestarts.get();
  return metric.values.filter((v) => v.labels.level === "normalizer")
    .reduce((sum, v) => sum + v.value, 0);
}

Deno.test("normalizer waits out a ClickHouse outage (connection refused) without sending anything to the DLQ", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  const target = new URL(testEnv.config.DATA_PROC_CLICKHOUSE_URL);
  const proxy = clickHouseProxy({ hostname: target.hostname, port: Number(target.port) });
  const ch = createClickHouse(proxy.url); // down: nothing listens on its port yet
  const shutdown = new AbortController();
  let normalizer: Awaited<ReturnType<typeof startNormalizer>> | undefined;
  try {
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: "p" });
    const COUNT = 120;
    await h.producer.send({
      topic: h.topics.bronzeTicks,
      acks: -1,
      messages: Array.from({ length: COUNT }, (_, m) => ({
        partition: 0,
        value: json({
          event_id: `o-${m}`,
          source: "eex",
          symbol: "DEBY",
          ts: Date.UTC(2012, m, 1),
          price: 1,
          size: 1,
        }),
      })),
    });
    const before = await normalizerRestarts();
    normalizer = await startNormalizer({
      config: testEnv.config,
      kafka: h.kafka,
      clickhouse: ch,
      sql: h.sql,
      logger: createLogger("test"),
      signal: shutdown.signal,
    });
    // Restarts 1..4 back off ~0.2 + 0.4 + 0.8 s (jittered): the same error every time.
    await pollUntil(
      "four restarts of the partition normalizer",
      async () => (await normalizerRestarts()) - before >= 4 ? true : undefined,
      { timeoutMs: 30_000 },
    );
    const groupId = `${testEnv.config.DATA_PROC_GROUP_ID}.normalizer`;
    assert.ok((await lag(h.kafka, groupId, [h.topics.bronzeTicks])) === COUNT);
    assert.equal((await dlqOf(testEnv, h)).length, 0);

    proxy.up();
    await untilCaughtUp(testEnv, h);
    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "ticks"), {
      rows: COUNT,
      distinct: COUNT,
    });
    assert.equal((await dlqOf(testEnv, h)).length, 0);
  } finally {
    shutdown.abort();
    await normalizer?.stop();
    await ch.close();
    await proxy.down();
    await h.close();
    await testEnv.cleanup();
  }
});
