/**
 * What encoding a produce request's record batch costs per record, with kafkajs's varint
 * writers as published and with the node's (stores/kafkajs_patches.ts): kafkajs builds a
 * Buffer for each varint, six per record. `deno bench -A stores/kafka_encode_bench.ts`.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const Encoder = require("kafkajs/src/protocol/encoder.js");
const Record = require("kafkajs/src/protocol/recordBatch/record/v0/index.js");
const { RecordBatch } = require("kafkajs/src/protocol/recordBatch/v0/index.js");

const writers = () => ({
  writeUVarInt: Encoder.prototype.writeUVarInt,
  writeVarLong: Encoder.prototype.writeVarLong,
  sizeOfVarLong: Encoder.sizeOfVarLong,
});
const published = writers();
await import("./kafkajs_patches.ts"); // after the originals were taken
const fixed = writers();

function use(set: ReturnType<typeof writers>) {
  Encoder.prototype.writeUVarInt = set.writeUVarInt;
  Encoder.prototype.writeVarLong = set.writeVarLong;
  Encoder.sizeOfVarLong = set.sizeOfVarLong;
}

// A canonical tick as the normalizer publishes it (~280 bytes).
const value = Buffer.from(JSON.stringify({
  event_id: "b-0123abcd-123456",
  instrument_id: "INST-0042",
  event_time_ms: 1_800_000_000_000,
  price: 52.31,
  size: 3.4,
  source: "eex",
  symbol: "SYM-0042",
  commodity: "power",
  region: "DE",
  currency: "EUR",
  unit: "MWh",
  ingest_time_ms: 1_800_000_000_000,
}));
const key = Buffer.from("INST-0042");

async function encodeBatch() {
  const records = [];
  for (let i = 0; i < 500; i++) {
    records.push(Record({ offsetDelta: i, timestampDelta: i % 3, key, value }));
  }
  const now = Date.now();
  await RecordBatch({ firstOffset: 0, firstTimestamp: now, maxTimestamp: now, records });
}

Deno.bench({
  name: "500 records, kafkajs as published",
  group: "record batch",
  baseline: true,
  async fn() {
    use(published);
    await encodeBatch();
  },
});
Deno.bench({
  name: "500 records, with the node's varint writers",
  group: "record batch",
  async fn() {
    use(fixed);
    await encodeBatch();
  },
});
