/** The node's partitioner puts every key where kafkajs's DefaultPartitioner (Kafka's) does. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createRequire } from "node:module";
import { Partitioners } from "./kafkajs.ts";
import { keyHash, KeyHashPartitioner, murmur2 } from "./kafka_partitioner.ts";

const kafkajsMurmur2 = createRequire(import.meta.url)(
  "kafkajs/src/producer/partitioners/default/murmur2.js",
) as (key: Buffer | string) => number;

function seeded(seed: number) {
  let s = seed;
  return () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

const keys: (string | Buffer)[] = ["", "a", "ab", "abc", "abcd", "INST-0042", "DEBY-2027-01"];
const random = seeded(11);
for (let n = 0; n < 2000; n++) {
  const length = Math.floor(random() * 40);
  const codes = Array.from({ length }, () => {
    const r = random();
    // ASCII mostly, then Latin-1, CJK, lone surrogates and astral pairs' halves
    return r < 0.7
      ? 32 + Math.floor(random() * 95)
      : r < 0.8
      ? 0x80 + Math.floor(random() * 0x700)
      : r < 0.9
      ? 0x4e00 + Math.floor(random() * 0x5000)
      : 0xd800 + Math.floor(random() * 0x800);
  });
  keys.push(String.fromCharCode(...codes));
  keys.push(Buffer.from(Array.from({ length }, () => Math.floor(random() * 256))));
}

Deno.test("murmur2 of strings and bytes equals kafkajs's", () => {
  for (const key of keys) {
    assert.equal(keyHash(key), kafkajsMurmur2(key), JSON.stringify(String(key)));
  }
  assert.equal(
    murmur2(new Uint8Array([1, 2, 3, 4, 5, 9]), 5),
    kafkajsMurmur2(Buffer.from([1, 2, 3, 4, 5])),
  );
});

Deno.test("keyed messages go to kafkajs's partition; a message's own partition wins", () => {
  const partitionMetadata = Array.from({ length: 6 }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  const ours = KeyHashPartitioner();
  const theirs = Partitioners.DefaultPartitioner();
  for (const key of keys) {
    const args = { topic: "t", partitionMetadata, message: { key, value: "v" } };
    assert.equal(ours(args), theirs(args));
  }
  assert.equal(
    ours({ topic: "t", partitionMetadata, message: { key: "x", value: "v", partition: 4 } }),
    4,
  );
});

Deno.test("messages without a key go round robin over the partitions with a leader", () => {
  const partitionMetadata = [0, 1, 2, 3].map((i) => ({
    partitionId: i,
    leader: i === 2 ? -1 : 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  const partition = KeyHashPartitioner();
  const seen = Array.from(
    { length: 6 },
    () => partition({ topic: "t", partitionMetadata, message: { key: null, value: "v" } }),
  );
  assert.ok(seen.every((p) => p !== 2), `no leader on 2: ${seen}`);
  assert.equal(new Set(seen).size, 3);
});
