/** The varint writers installed on kafkajs's Encoder write the bytes Kafka's protocol defines. */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { writeUVarInt } from "./kafkajs_patches.ts";
import { groupMessagesPerPartition } from "./kafka_grouping.ts";

const requireKafkajs = createRequire(import.meta.url);
const Encoder = requireKafkajs("kafkajs/src/protocol/encoder.js");
const Decoder = requireKafkajs("kafkajs/src/protocol/decoder.js");
const Long = requireKafkajs("kafkajs/src/utils/long.js");

/** Zigzag then unsigned LEB128, over 64 bits (Kafka's varint and varlong). */
function reference(value: bigint, bits: 32n | 64n): number[] {
  let n = BigInt.asUintN(Number(bits), (value << 1n) ^ (value >> (bits - 1n)));
  const bytes: number[] = [];
  while (n >= 0x80n) {
    bytes.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  bytes.push(Number(n));
  return bytes;
}

const edges = [0, 1, -1, 63, -64, 64, -65, 127, 128, 8191, 8192, 2 ** 20, -(2 ** 20), 2 ** 27];
const int32s = [
  ...edges,
  2 ** 30 - 1,
  -(2 ** 30),
  2 ** 30,
  -(2 ** 30) - 1,
  2 ** 31 - 1,
  -(2 ** 31),
];
const longs = [
  ...int32s,
  2 ** 31,
  -(2 ** 31) - 1,
  1_800_000_000_000,
  -1_800_000_000_000,
  2 ** 53 - 1,
];

Deno.test("varints: each value's zigzag LEB128 bytes, read back by kafkajs", () => {
  for (const v of int32s) {
    const bytes = [...new Encoder().writeVarInt(v).buffer];
    assert.deepEqual(bytes, reference(BigInt(v), 32n), `varint ${v}`);
    assert.equal(new Decoder(Buffer.from(bytes)).readVarInt(), v);
  }
});

Deno.test("varlongs: numbers, Longs and strings give the 64-bit bytes and size", () => {
  for (const v of longs) {
    const expected = reference(BigInt(v), 64n);
    for (const input of [v, Long.fromNumber(v), String(v)]) {
      assert.deepEqual([...new Encoder().writeVarLong(input).buffer], expected, `varlong ${v}`);
    }
    assert.equal(Encoder.sizeOfVarLong(v), expected.length, `size of ${v}`);
    assert.equal(new Decoder(Buffer.from(expected)).readVarLong().toString(), String(v));
  }
});

Deno.test("a record batch's encoder grows past its first buffer one varint at a time", () => {
  const encoder = new Encoder(1);
  const expected: number[] = [];
  for (let i = 0; i < 1000; i++) {
    encoder.writeVarInt(i * 4099 - 2_000_000);
    expected.push(...reference(BigInt(i * 4099 - 2_000_000), 32n));
  }
  assert.deepEqual([...encoder.buffer], expected);
});

Deno.test("kafkajs's producer loads the linear grouping in place of its own", () => {
  // Its sendMessages module takes the grouping when it loads: it must not have loaded yet
  // when the patch ran, and now finds the patch's function in the module's place.
  const sendMessages = requireKafkajs("kafkajs/src/producer/sendMessages.js");
  assert.equal(typeof sendMessages, "function");
  assert.equal(
    requireKafkajs("kafkajs/src/producer/groupMessagesPerPartition.js"),
    groupMessagesPerPartition,
  );
});

Deno.test("the writers are installed on kafkajs's own Encoder", () => {
  assert.equal(Encoder.prototype.writeUVarInt, writeUVarInt);
  assert.equal(Encoder.prototype.writeVarLong.name, "writeVarLong");
  assert.notEqual(Encoder.prototype.writeVarLong.toString().indexOf("smallVarLong"), -1);
});

Deno.test("varlongs read back: short ones in Numbers, longer ones by kafkajs, as Longs", () => {
  for (const v of longs) {
    const bytes = reference(BigInt(v), 64n);
    const decoder = new Decoder(Buffer.from([...bytes, 0x2a]));
    const read = decoder.readVarLong();
    assert.ok(Long.isLong(read));
    assert.equal(read.toString(), String(v), `varlong ${v}`);
    assert.equal(decoder.readInt8(), 0x2a, `after ${v}`); // read exactly its bytes
  }
});

Deno.test("Long.fromString gives each string's value, the same string twice in a row too", () => {
  for (const s of ["1800000000000", "1800000000000", "7", "-9223372036854775808", "7"]) {
    assert.equal(Long.fromString(s).toString(), s);
    assert.equal(Long.fromValue(s).add(1).toString(), String(BigInt(s) + 1n));
  }
  assert.throws(() => Long.fromString(""));
});
