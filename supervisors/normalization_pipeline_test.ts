import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { ReferenceLookup } from "../actors/reference_lookup.ts";
import { topicNames } from "../stores/kafka.ts";
import {
  type BronzeRecord,
  curvePointRow,
  normalizeRecords,
  processRecords,
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
