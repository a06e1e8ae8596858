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
const decodeRecordBatch = require("kafkajs/src/protocol/recordBatch/v0/decoder.js");
const Decoder = require("kafkajs/src/protocol/decoder.js");
const Long = require("kafkajs/src/utils/long.js");

const writers = () => ({
  writeUVarInt: Encoder.prototype.writeUVarInt,
  writeVarLong: Encoder.prototype.writeVarLong,
  sizeOfVarLong: Encoder.sizeOfVarLong,
  readVarLong: Decoder.prototype.readVarLong,
  fromString: Long.fromString,
});
const published = writers();
await import("./kafkajs_patches.ts"); // after the originals were taken
const fixed = writers();

function use(set: ReturnType<typeof writers>) {
  Encoder.prototype.writeUVarInt = set.writeUVarInt;
  Encoder.prototype.writeVarLong = set.writeVarLong;
  Encoder.sizeOfVarLong = set.sizeOfVarLong;
  Decoder.prototype.readVarLong = set.readVarLong;
  Long.fromString = set.fromString;
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
  return await RecordBatch({
    firstOffset: "123456789",
    firstTimestamp: now,
    maxTimestamp: now,
    records,
  });
}

// A fetched batch as the broker returns it (RecordBatch writes its first offset and length).
use(published);
const fetchedBuffer = (await encodeBatch()).buffer;

async function decodeBatch() {
  const { records } = await decodeRecordBatch(new Decoder(fetchedBuffer));
  if (records.length !== 500) throw new Error(`decoded ${records.length} records`);
}

Deno.bench({
  name: "encode 500 records, kafkajs as published",
  group: "encode",
  baseline: true,
  async fn() {
    use(published);
    await encodeBatch();
  },
});
Deno.bench({
  name: "encode 500 records, with the node's fixes",
  group: "encode",
  async fn() {
    use(fixed);
    await encodeBatch();
  },
});
Deno.bench({
  name: "decode 500 records, kafkajs as published",
  group: "decode",
  baseline: true,
  async fn() {
    use(published);
    await decodeBatch();
  },
});
Deno.bench({
  name: "decode 500 records, with the node's fixes",
  group: "decode",
  async fn() {
    use(fixed);
    await decodeBatch();
  },
});
