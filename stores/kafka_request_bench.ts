/**
 * What kafkajs spends sorting one produce request's messages by partition, by request size:
 * it copies a partition's list at every message it adds, so the cost per message grows with
 * the request; and what the linear grouping the node installs in its place spends.
 * `deno bench -A stores/kafka_request_bench.ts`; MAX_REQUEST_MESSAGES comes from it.
 */
import { createRequire } from "node:module";
import { groupMessagesPerPartition as linearGrouping } from "./kafka_grouping.ts";

const require = createRequire(import.meta.url);
const groupMessagesPerPartition = require("kafkajs/src/producer/groupMessagesPerPartition.js");
const { DefaultPartitioner } = require("kafkajs/src/producer/partitioners/index.js");

for (const partitions of [1, 6]) {
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({
    partitionId: i,
    leader: 0,
  }));
  const partitioner = DefaultPartitioner();
  for (const size of [500, 1700, 5000]) {
    const messages = Array.from({ length: size }, (_, i) => ({
      key: `INST-${i}`,
      value: "x".repeat(300),
    }));
    const group = `${size} messages to ${partitions} partition(s)`;
    Deno.bench(`kafkajs: ${group}`, { group, baseline: true }, () => {
      groupMessagesPerPartition({ topic: "t", partitionMetadata, messages, partitioner });
    });
    Deno.bench(`linear: ${group}`, { group }, () => {
      linearGrouping({ topic: "t", partitionMetadata, messages, partitioner });
    });
  }
}
