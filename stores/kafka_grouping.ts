/**
 * kafkajs's groupMessagesPerPartition (producer/groupMessagesPerPartition.js, 2.2.4) in linear
 * time, installed in its place by stores/kafkajs_patches.ts. kafkajs copies a partition's list
 * at every message it adds to it: a request of 500 messages bound for one partition (the
 * actors' outputs of one partition go to one partition) cost 1.3-1.5 ms and ~1 MB of garbage
 * (`deno bench -A stores/kafka_request_bench.ts`). Same result: each partition's messages in
 * the order given, an empty object when the topic has no partition metadata.
 */
export interface GroupMessagesArgs<M> {
  topic: string;
  partitionMetadata: readonly unknown[];
  messages: readonly M[];
  partitioner: (
    args: { topic: string; partitionMetadata: readonly unknown[]; message: M },
  ) => number;
}

export function groupMessagesPerPartition<M>(
  { topic, partitionMetadata, messages, partitioner }: GroupMessagesArgs<M>,
): Record<number, M[]> {
  const byPartition: Record<number, M[]> = {};
  if (partitionMetadata.length === 0) return byPartition;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    (byPartition[partition] ??= []).push(message);
  }
  return byPartition;
}
