/**
 * Adding an actor kind is one definition (actors/kinds/<kind>.ts) and one registry line: the
 * runtime, the flush and the stores need nothing else. Shown with a small third kind defined
 * here, run by a real ActorConsumer against real Kafka, Redis and ClickHouse beside the two
 * kinds of the product.
 */
import assert from "node:assert/strict";
import { Partitioners } from "kafkajs";
import type { ActorKindDefinition } from "../actors/kinds/kind.ts";
import { KINDS } from "../actors/kinds/registry.ts";
import { createLogger } from "../observability/logger.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka } from "../stores/kafka.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { ActorConsumer } from "../supervisors/actor_consumer.ts";
import { createTopics } from "./actor_harness.ts";
import { counterKind } from "./counter_kind.ts";
import { freshEnv, pollUntil } from "./support.ts";

Deno.test({
  name: "a third actor kind defined in one place runs beside the others: events in, projection out",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({ DATA_PROC_NORMALIZER_ENABLED: "false" });
    await createTopics(env);
    const topic = `${env.config.DATA_PROC_TOPIC_PREFIX}test.counter.v1`;
    const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`);
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 2 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const counts = { a: 7, b: 12, c: 1 };
    await producer.send({
      topic,
      acks: -1,
      messages: Object.entries(counts).flatMap(([key, n]) =>
        Array.from({ length: n }, () => ({ key, value: JSON.stringify({ key }) }))
      ),
    });
    await producer.disconnect();

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
    try {
      await consumer.start();
      for (const [key, n] of Object.entries(counts)) {
        const projection = await pollUntil(`counter projection of ${key}`, async () => {
          const raw = await redis.get(keys.prefixed(`projection:counter:${key}`));
          const value = raw ? JSON.parse(raw) : null;
          return value?.count === n ? value : undefined;
        });
        assert.equal(projection.version, n);
      }
      // The runtime knows the kind: its partitions, actors and inspection.
      assert.ok(consumer.partitions.some((p) => p.kind === "counter"));
      const live = consumer.findLive("counter", "b");
      assert.equal(live?.actor.inspect().applied_offset !== undefined, true);
    } finally {
      await consumer.stop();
      await closeRedis(redis);
      await clickhouse.close();
      await env.cleanup();
    }
  },
});
