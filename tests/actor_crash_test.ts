/**
 * An actor that crashes, run by a real ActorConsumer against real Kafka, Redis and
 * ClickHouse: actors keep no events between snapshots, so a key's first crash restarts its
 * partition with the key watched; the re-read crashes it again, this time with the events a
 * retry needs, and the event that crashes it every time goes to the DLQ. Every other event,
 * of that key and of its neighbours, counts exactly once.
 */
import assert from "node:assert/strict";
import { Partitioners } from "../stores/kafkajs.ts";
import { metrics } from "../observability/metrics.ts";
import { topicNames } from "../stores/kafka.ts";
import { counterHarness } from "./counter_kind.ts";
import { readTopicUntil } from "./normalizer_support.ts";
import { pollUntil } from "./support.ts";

async function partitionRestarts(): Promise<number> {
  const metric = await metrics.actorRestarts.get();
  return metric.values.find((v) => v.labels.level === "partition")?.value ?? 0;
}

Deno.test({
  name: "a crashing key restarts its partition once, then its poison event goes to the DLQ",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { env, topic, kafka, consumer, projection, close } = await counterHarness(1);
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const event = (key: string, poison = false) => ({
      key,
      value: JSON.stringify(poison ? { key, poison } : { key }),
    });
    const repeat = (n: number, key: string) => Array.from({ length: n }, () => event(key));
    // Offsets 0-7 are a and b; 8 is the poison event; a and b go on after it.
    await producer.send({
      topic,
      acks: -1,
      messages: [...repeat(5, "a"), ...repeat(3, "b"), event("a", true)],
    });

    const restartsBefore = await partitionRestarts();
    const count = async (key: string) => (await projection(key))?.count ?? null;
    try {
      await consumer.start();
      const dlq = await readTopicUntil(
        env.config.DATA_PROC_KAFKA_BOOTSTRAP,
        topicNames(env.config.DATA_PROC_TOPIC_PREFIX).dlq,
        1,
        pollUntil,
      );
      const record = JSON.parse(dlq[0]!.payload!);
      assert.equal(record.reason, "poison_event");
      assert.equal(record.source_topic, topic);
      assert.equal(String(record.source_offset), "8");
      assert.equal(await partitionRestarts() - restartsBefore, 1);

      // The watched key and its neighbour go on, each event counted once.
      await producer.send({ topic, acks: -1, messages: [...repeat(4, "a"), ...repeat(2, "b")] });
      await pollUntil(
        "a at 9 and b at 5",
        async () => (await count("a")) === 9 && (await count("b")) === 5 ? true : undefined,
      );
    } finally {
      await consumer.stop();
      await producer.disconnect();
    }
    try {
      // After the final flush too: nothing counted twice by the restart's re-read.
      assert.equal(await count("a"), 9);
      assert.equal(await count("b"), 5);
      const dlq = await readTopicUntil(
        env.config.DATA_PROC_KAFKA_BOOTSTRAP,
        topicNames(env.config.DATA_PROC_TOPIC_PREFIX).dlq,
        1,
        pollUntil,
      );
      assert.equal(dlq.length, 1);
    } finally {
      await close();
    }
  },
});
