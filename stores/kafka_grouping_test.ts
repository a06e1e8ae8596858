/** The linear grouping gives what kafkajs's own gives (loaded here unpatched, for comparison). */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { groupMessagesPerPartition } from "./kafka_grouping.ts";

const requireKafkajs = createRequire(import.meta.url);
const kafkajsGrouping = requireKafkajs("kafkajs/src/producer/groupMessagesPerPartition.js");

Deno.test("grouping by partition: kafkajs's result, each partition's messages in the order given", () => {
  const partitionMetadata = Array.from({ length: 6 }, (_, i) => ({ partitionId: i, leader: 1 }));
  // A partitioner that skews: most messages to partition 2, none to 5.
  const partitioner = ({ message }: { message: { key: string } }) =>
    Number(message.key.slice(1)) % 3 === 0 ? 2 : Number(message.key.slice(1)) % 5;
  const messages = Array.from({ length: 1200 }, (_, i) => ({ key: `k${i}`, value: String(i) }));
  assert.notEqual(kafkajsGrouping, groupMessagesPerPartition);
  const args = { topic: "t", partitionMetadata, messages, partitioner };
  const ours = groupMessagesPerPartition(args);
  assert.deepEqual(ours, kafkajsGrouping(args));
  assert.deepEqual(Object.keys(ours), ["0", "1", "2", "3", "4"]);
  assert.deepEqual(groupMessagesPerPartition({ ...args, partitionMetadata: [] }), {});
  assert.deepEqual(kafkajsGrouping({ ...args, partitionMetadata: [] }), {});
});
