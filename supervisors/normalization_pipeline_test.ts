import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { ClickHouseError } from "@clickhouse/client";
import type { Message, Producer } from "kafkajs";
import type { ReferenceLookup } from "../messages/reference_lookup.ts";
import type { DlqRecord } from "../messages/dlq_record.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import { MAX_REQUEST_BYTES, MAX_REQUEST_MESSAGES, topicNames } from "../stores/kafka.ts";
import {
  type BronzeRecord,
  curvePointRow,
  MAX_PARTITIONS_PER_INSERT,
  normalizeRecords,
  processRecords,
  publishOutputs,
  publishSplitting,
  storeRefusal,
  tickRow,
} from "./normalization_pipeline.ts";

const topics = topicNames("p.");
const SKEW_MS = 300_000;
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const record = (topic: string, offset: number, value: Uint8Array | null): BronzeRecord => ({
  topic,
  partition: 2,
  offset: String(offset),
  key: new Uint8Array([0xff, 0x00]),
  value,
  timestampMs: 1000,
});
const tick = (symbol: string, ts = 5000) =>
  enc({ event_id: `e-${symbol}`, source: "ice", symbol, ts, price: "1.5", size: 1 });

function lookup(symbols: Set<string>): ReferenceLookup {
  return {
    instrument: (_s, symbol) =>
      symbols.has(symbol)
        ? {
          instrument_id: `i-${symbol}`,
          price_multiplier: "1",
          commodity: null,
          region: null,
          currency: null,
          unit: null,
        }
        : undefined,
    curve: () => undefined,
  };
}

Deno.test("normalizeRecords accounts for every record exactly once", () => {
  const out = normalizeRecords(
    [
      record(topics.bronzeTicks, 0, tick("A")),
      record(topics.bronzeTicks, 1, tick("B")),
      record(topics.bronzeTicks, 2, null),
      record(topics.bronzeCurves, 3, enc({ nope: 1 })),
      record("elsewhere", 4, tick("A")),
      record(topics.bronzeTicks, 5, tick("A", 1000 + SKEW_MS + 1)), // ahead of timestampMs
    ],
    lookup(new Set(["A"])),
    { topics, maxFutureSkewMs: SKEW_MS, nowMs: 42 },
  );
  assert.equal(out.ticks.length, 1);
  assert.equal(out.curvePoints.length, 0);
  assert.deepEqual(out.dlq.map((d) => [d.source_offset, d.reason]), [
    ["1", "unknown_instrument"],
    ["2", "invalid_payload"],
    ["3", "invalid_payload"],
    ["4", "invalid_payload"],
    ["5", "invalid_payload"],
  ]);
  assert.match(out.dlq[4]!.message, /^ts: .* ahead of the record timestamp 1000/);
  const first = out.dlq[0]!;
  assert.equal(first.key_b64, Buffer.from([0xff, 0x00]).toString("base64"));
  assert.equal(first.value_b64, Buffer.from(tick("B")).toString("base64"));
  assert.equal(first.stage, "normalize");
  assert.equal(first.failed_at_ms, 42);
  assert.equal(first.source_topic, topics.bronzeTicks);
  assert.equal(first.source_partition, 2);
  assert.equal(out.dlq[1]!.value_b64, null);
});

Deno.test("processRecords retries a batch with misses once the reference data changed", async () => {
  const known = new Set(["A"]);
  let refreshes = 0;
  const refdata = {
    ...lookup(known),
    refreshAfterMiss: () => {
      refreshes += 1;
      known.add("B");
      return Promise.resolve(true);
    },
  };
  const out = await processRecords([
    record(topics.bronzeTicks, 0, tick("A")),
    record(topics.bronzeTicks, 1, tick("B")),
  ], { refdata, topics, maxFutureSkewMs: SKEW_MS });
  assert.equal(refreshes, 1);
  assert.deepEqual(out.ticks.map((t) => t.instrument_id), ["i-A", "i-B"]);
  assert.equal(out.dlq.length, 0);
});

Deno.test("silver rows carry every column, DateTime text in UTC and no nulls", () => {
  const row = tickRow({
    event_id: "e",
    instrument_id: "i",
    event_time_ms: Date.UTC(2027, 0, 2, 3, 4, 5, 999),
    price: -1,
    size: 2,
    source: "s",
    symbol: "y",
    commodity: null,
    region: "R",
    currency: null,
    unit: null,
    ingest_time_ms: 7,
  });
  assert.equal(row.event_time, "2027-01-02 03:04:05");
  assert.equal(row.commodity, "");
  assert.equal(Object.keys(row).length, 13);
  const point = curvePointRow({
    event_id: "e",
    curve_id: "c",
    as_of: "2027-01-02",
    tenor: "2027-Q1",
    price: 1,
    event_time_ms: 0,
    source: "s",
    curve: "k",
    commodity: null,
    region: null,
    currency: null,
    unit: null,
    ingest_time_ms: 0,
  });
  assert.equal(point.event_time, "1970-01-01 00:00:00");
  assert.equal(Object.keys(point).length, 14);
});

Deno.test("normalizeRecords sends a record that makes normalization throw to the DLQ as poison", () => {
  const throwing: ReferenceLookup = {
    instrument: () => {
      throw new Error("bug");
    },
    curve: () => undefined,
  };
  const out = normalizeRecords(
    [
      record(topics.bronzeTicks, 0, tick("A")),
      record(topics.bronzeTicks, 1, null),
    ],
    throwing,
    { topics, maxFutureSkewMs: SKEW_MS, nowMs: 1 },
  );
  assert.deepEqual(out.dlq.map((d) => [d.source_offset, d.reason]), [
    ["0", "poison_event"],
    ["1", "invalid_payload"],
  ]);
  assert.match(out.dlq[0]!.message, /unexpected normalization error: bug/);
});

/** The broker's default message.max.bytes. */
const BROKER_MAX_BYTES = 1_048_588;

/**
 * kafkajs's errors as it builds them (its error classes are not named exports under Deno's
 * CommonJS interop): a broker error code is a `KafkaJSProtocolError` with its `type`.
 */
const kafkaError = (name: string, message: string, fields: Record<string, unknown> = {}) =>
  Object.assign(new Error(message), { name, ...fields });
const protocolError = (type: string, code: number) =>
  kafkaError("KafkaJSProtocolError", `protocol error ${type}`, { type, code, retriable: false });

const bytesOf = (m: Message) =>
  Buffer.byteLength(String(m.key ?? "")) + Buffer.byteLength(String(m.value ?? ""));

/** A producer that keeps every request and refuses one over the broker's limit, as Kafka does. */
function fakeProducer() {
  const requests: { topic: string; messages: Message[] }[][] = [];
  const producer: Pick<Producer, "sendBatch"> = {
    sendBatch: ({ topicMessages }) => {
      const all = (topicMessages ?? []).flatMap((t) => t.messages);
      if (all.reduce((sum, m) => sum + bytesOf(m), 0) > BROKER_MAX_BYTES) {
        return Promise.reject(protocolError("MESSAGE_TOO_LARGE", 10));
      }
      requests.push((topicMessages ?? []).map((t) => ({ topic: t.topic, messages: t.messages })));
      return Promise.resolve([]);
    },
  };
  return { producer, requests };
}

/**
 * A ClickHouse that, like current servers, refuses a block touching more than 100 monthly
 * partitions (`month` of a row), and refuses rows for which `badRow` says so.
 */
function fakeClickHouse(options: {
  month: (row: Record<string, unknown>) => string;
  badRow?: (row: Record<string, unknown>) => boolean;
  down?: boolean;
}) {
  const blocks: { table: string; rows: Record<string, unknown>[] }[] = [];
  const client = {
    insert: (params: { table: string; values: Record<string, unknown>[] }) => {
      if (options.down) {
        return Promise.reject(
          Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:8123"), { code: "ECONNREFUSED" }),
        );
      }
      const months = new Set(params.values.map(options.month));
      if (months.size > 100) {
        return Promise.reject(
          new ClickHouseError({
            message: "Too many partitions for single INSERT block (more than 100). ",
            code: "252",
            type: "TOO_MANY_PARTS",
          }),
        );
      }
      if (params.values.some((r) => options.badRow?.(r))) {
        // 18.16's wording, which @clickhouse/client leaves a plain Error.
        return Promise.reject(
          new Error(
            "Code: 27, e.displayText() = DB::Exception: Cannot parse input: expected , " +
              "(at row 1)\n, e.what() = DB::Exception\n",
          ),
        );
      }
      blocks.push({ table: params.table, rows: params.values });
      return Promise.resolve({ executed: true, query_id: "q" });
    },
  } as unknown as ClickHouseClient;
  return { client, blocks };
}

const noRows = { month: () => "none" };

Deno.test("publishOutputs sends 1,000 DLQ envelopes of one partition in requests under 512 KiB, in order", async () => {
  const { producer, requests } = fakeProducer();
  const { client } = fakeClickHouse(noRows);
  const pad = "x".repeat(2000);
  const dlq = normalizeRecords(
    Array.from({ length: 1000 }, (_, i) => record(topics.bronzeTicks, i, enc({ pad, i }))),
    lookup(new Set()),
    { topics, maxFutureSkewMs: SKEW_MS, nowMs: 1 },
  ).dlq;
  assert.equal(dlq.length, 1000);
  await publishOutputs({ ticks: [], curvePoints: [], dlq }, {
    producer,
    clickhouse: client,
    topics,
    silverDb: "silver",
    maxInsertRows: 1000,
  });
  assert.ok(requests.length > 1);
  for (const request of requests) {
    const messages = request.flatMap((t) => t.messages);
    assert.ok(messages.reduce((sum, m) => sum + bytesOf(m), 0) <= MAX_REQUEST_BYTES);
    assert.ok(messages.length <= MAX_REQUEST_MESSAGES);
  }
  const sent = requests.flat().flatMap((t) => t.messages).map((m) =>
    (JSON.parse(String(m.value)) as DlqRecord).source_offset
  );
  assert.deepEqual(sent, dlq.map((d) => d.source_offset));
});

Deno.test("publishOutputs inserts ticks of 150 months in blocks of at most 50 months and maxInsertRows rows", async () => {
  const { producer } = fakeProducer();
  const month = (r: Record<string, unknown>) => String(r.event_time).slice(0, 7);
  const { client, blocks } = fakeClickHouse({ month });
  const out = normalizeRecords(
    Array.from({ length: 300 }, (_, i) =>
      record(
        topics.bronzeTicks,
        i,
        enc({
          event_id: `m-${i}`,
          source: "ice",
          symbol: "A",
          ts: Date.UTC(2010, i % 150, 15),
          price: 1,
          size: 1,
        }),
      )),
    lookup(new Set(["A"])),
    // The records carry timestamp 1000 (1970): allow event times of 2010..2022.
    { topics, maxFutureSkewMs: Date.UTC(2030, 0, 1), nowMs: 1 },
  );
  assert.equal(out.ticks.length, 300);
  await publishOutputs(out, {
    producer,
    clickhouse: client,
    topics,
    silverDb: "silver",
    maxInsertRows: 120,
  });
  for (const block of blocks) {
    assert.ok(new Set(block.rows.map(month)).size <= MAX_PARTITIONS_PER_INSERT);
    assert.ok(block.rows.length <= 120);
  }
  const ids = blocks.flatMap((b) => b.rows.map((r) => r.event_id));
  assert.equal(ids.length, 300);
  assert.equal(new Set(ids).size, 300);
});

Deno.test("storeRefusal tells a store refusing the data from an outage", () => {
  const cases: [unknown, string | undefined][] = [
    [protocolError("MESSAGE_TOO_LARGE", 10), "kafka:MESSAGE_TOO_LARGE"],
    [
      // kafkajs's retrier wraps a non-retriable broker error, keeping it as the cause.
      kafkaError("KafkaJSNonRetriableError", "retrier gave up", {
        cause: protocolError("RECORD_LIST_TOO_LARGE", 18),
      }),
      "kafka:RECORD_LIST_TOO_LARGE",
    ],
    [protocolError("NOT_LEADER_FOR_PARTITION", 6), undefined],
    [protocolError("TOPIC_AUTHORIZATION_FAILED", 29), undefined],
    [kafkaError("KafkaJSConnectionError", "Connection error: ECONNREFUSED"), undefined],
    [
      kafkaError("KafkaJSNumberOfRetriesExceeded", "retries exceeded", {
        cause: kafkaError("KafkaJSRequestTimeoutError", "Request Produce(key: 0) timed out"),
      }),
      undefined,
    ],
    [new Error("Code: 27, e.displayText() = DB::Exception: Cannot parse input"), "clickhouse:27"],
    [new Error("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist."), undefined],
    [new ClickHouseError({ message: "x", code: "252", type: "TOO_MANY_PARTS" }), "clickhouse:252"],
    [new ClickHouseError({ message: "x", code: "241", type: "MEMORY_LIMIT_EXCEEDED" }), undefined],
    [Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }), undefined],
    [new Error("Timeout error."), undefined],
    ["not an error", undefined],
  ];
  for (const [err, code] of cases) assert.equal(storeRefusal(err)?.code, code, String(err));
  const tooManyPartitions = new ClickHouseError({
    message: "x",
    code: "252",
    type: "TOO_MANY_PARTS",
  });
  assert.equal(storeRefusal(tooManyPartitions)?.blockTooLarge, true);
  assert.equal(storeRefusal(protocolError("MESSAGE_TOO_LARGE", 10))?.blockTooLarge, false);
});

Deno.test("publishSplitting DLQs only the record a store refuses, as write_failed, and writes the rest", async () => {
  const { producer, requests } = fakeProducer();
  const { client, blocks } = fakeClickHouse({
    month: () => "m",
    badRow: (r) => r.symbol === "BAD",
  });
  const records = ["A", "A", "BAD", "A", "A"].map((symbol, i) =>
    record(
      topics.bronzeTicks,
      i,
      enc({ event_id: `e-${i}`, source: "ice", symbol, ts: 5000, price: 1, size: 1 }),
    )
  );
  const sinks = {
    producer,
    clickhouse: client,
    topics,
    silverDb: "silver",
    maxInsertRows: 100,
  };
  const out = await publishSplitting(records, {
    refdata: lookup(new Set(["A", "BAD"])),
    topics,
    maxFutureSkewMs: SKEW_MS,
    sinks,
    now: () => 7,
  });
  assert.deepEqual(out.ticks.map((t) => t.event_id), ["e-0", "e-1", "e-3", "e-4"]);
  assert.equal(out.dlq.length, 1);
  const d = out.dlq[0]!;
  assert.deepEqual([d.source_offset, d.reason, d.failed_at_ms], ["2", "write_failed", 7]);
  assert.match(d.message, /clickhouse:27/);
  assert.equal(d.value_b64, Buffer.from(records[2]!.value!).toString("base64"));
  const inserted = new Set(blocks.flatMap((b) => b.rows.map((r) => r.event_id)));
  assert.deepEqual([...inserted].sort(), ["e-0", "e-1", "e-3", "e-4"]);
  const dlqSent = requests.flat().filter((t) => t.topic === topics.dlq).flatMap((t) => t.messages);
  assert.equal(dlqSent.length, 1);
});

Deno.test("publishSplitting rethrows an outage and sends nothing to the DLQ for it", async () => {
  const { producer, requests } = fakeProducer();
  const { client } = fakeClickHouse({ month: () => "m", down: true });
  await assert.rejects(
    publishSplitting([record(topics.bronzeTicks, 0, tick("A"))], {
      refdata: lookup(new Set(["A"])),
      topics,
      maxFutureSkewMs: SKEW_MS,
      sinks: { producer, clickhouse: client, topics, silverDb: "silver", maxInsertRows: 10 },
    }),
    /ECONNREFUSED/,
  );
  assert.equal(requests.flat().filter((t) => t.topic === topics.dlq).length, 0);
});
