/** kafkajs from Deno against the real broker: admin, produce, group consume, commit. */
import assert from "node:assert/strict";
import { Partitioners } from "../stores/kafkajs.ts";
import { createKafka, ensureTopicNames } from "../stores/kafka.ts";
import { uniqueId } from "./support.ts";

const BOOTSTRAP = Deno.env.get("DATA_PROC_KAFKA_BOOTSTRAP") ?? "127.0.0.1:9092";

Deno.test({
  name: "kafkajs creates a topic, produces, consumes in a group, commits and reads the offset back",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const id = uniqueId();
    const topic = `t-kafka-${id}`;
    const groupId = `g-kafka-${id}`;
    const kafka = createKafka(BOOTSTRAP, `test-${id}`);
    const admin = kafka.admin();
    await admin.connect();
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    const consumer = kafka.consumer({ groupId });
    try {
      await ensureTopicNames(admin, [topic], 2);
      assert.ok((await admin.listTopics()).includes(topic));
      await producer.connect();
      await producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `v${i}` })),
      });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const seen: string[] = [];
      let resolveAll: () => void = () => {};
      const all = new Promise<void>((r) => (resolveAll = r));
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          seen.push(message.value!.toString());
          await consumer.commitOffsets([{
            topic,
            partition,
            offset: String(Number(message.offset) + 1),
          }]);
          if (seen.length === 10) resolveAll();
        },
      });
      await all;
      assert.deepEqual(seen.sort(), Array.from({ length: 10 }, (_, i) => `v${i}`).sort());
      const offsets = await admin.fetchOffsets({ groupId, topics: [topic] });
      const committed = offsets[0]!.partitions.reduce((n, p) => n + Number(p.offset), 0);
      assert.equal(committed, 10);
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect();
    }
  },
});
