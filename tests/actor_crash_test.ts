/**
 * An actor that crashes, run by a real ActorConsumer against real Kafka, Redis and
 * ClickHouse: actors keep no events between snapshots, so a key's first crash restarts its
 * partition with the key watched; the re-read crashes it again, this time with the events a
 * retry needs, and the event that crashes it every time goes to the DLQ. Every other event,
 * of that key and of its neighbours, counts exactly once.
 */
import assert from "node:assert/strict";
import { Partitioners } from "kafkajs";
import type { ActorKindDefinition } from "../actors/kinds/kind.ts";
import { KINDS } from "../actors/kinds/registry.ts";
import { createLogger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka, topicNames } from "../stores/kafka.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { ActorConsumer } from "../supervisors/actor_consumer.ts";
import { createTopics } from "./actor_harness.ts";
import { counterKind } from "./counter_kind.ts";
import { readTopicUntil } from "./normalizer_support.ts";
import { freshEnv, pollUntil } from "./support.ts";

async function partitionRestarts(): Promise<number> {
  const metric = await metrics.actorRestarts.get();
  return metric.values.find((v) => v.labels.level === "partition")?.value ?? 0;
}

Deno.test({
  name: "a crashing key restarts its partition once, then its poison event goes to the DLQ",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({ DATA_PROC_NORMALIZER_ENABLED: "false" });
    await createTopics(env);
    const topic = `${env.config.DATA_PROC_TOPIC_PREFIX}test.counter.v1`;
    const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true });
    await admin.disconnect();
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

    const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
    const clickhouse = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
    const keys = redisKeys(env.config.DATA_PROC_REDIS_PREFIX, env.config.DATA_PROC_GROUP_ID);
    const consumer = new ActorConsumer({
      config: env.config,
      kafka,
      clickhouse,
      store: new ActorStore(redis, keys),
      logger: createLogger("test"),
      kinds: [...KINDS, counterKind(topic) as ActorKindDefinition],
    });
    const restartsBefore = await partitionRestarts();
    const count = async (key: string) => {
      const raw = await redis.get(keys.prefixed(`projection:counter:${key}`));
      return raw ? (JSON.parse(raw) as { count: number }).count : null;
    };
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
      await closeRedis(redis);
      await clickhouse.close();
      await env.cleanup();
    }
  },
});
