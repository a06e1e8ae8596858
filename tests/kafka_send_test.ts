/** sendChunked against the local broker: request sizes, and order per partition. */
import assert from "node:assert/strict";
import type { Producer } from "kafkajs";
import {
  createKafka,
  ensureTopics,
  MAX_REQUEST_BYTES,
  MAX_REQUEST_MESSAGES,
  type OutgoingMessage,
  sendChunked,
  topicNames,
} from "../stores/kafka.ts";
import { readTopic } from "./normalizer_support.ts";
import { freshEnv } from "./support.ts";

Deno.test("sendChunked sends 1,200 messages of two topics in requests of at most 500 messages, each topic in order", async () => {
  const testEnv = await freshEnv();
  const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
  const topics = topicNames(testEnv.config.DATA_PROC_TOPIC_PREFIX);
  const kafka = createKafka(bootstrap, "kafka-send-test");
  const admin = kafka.admin();
  const producer = kafka.producer();
  try {
    await admin.connect();
    await ensureTopics(admin, topics, 1);
    await producer.connect();
    // Small messages: the byte limit alone would put all of them in one request.
    const messages: OutgoingMessage[] = Array.from({ length: 1200 }, (_, i) => ({
      topic: i % 3 === 0 ? topics.bars : topics.latestPrice,
      key: "INST-1",
      value: String(i),
    }));
    const requests: number[] = [];
    const counting: Pick<Producer, "sendBatch"> = {
      sendBatch: (batch) => {
        const all = (batch.topicMessages ?? []).flatMap((t) => t.messages);
        const bytes = all.reduce(
          (sum, m) => sum + String(m.key).length + String(m.value).length,
          0,
        );
        assert.ok(bytes <= MAX_REQUEST_BYTES);
        requests.push(all.length);
        return producer.sendBatch(batch);
      },
    };

    await sendChunked(counting, messages);

    assert.deepEqual(requests, [500, 500, 200]);
    assert.ok(requests.every((n) => n <= MAX_REQUEST_MESSAGES));
    for (const topic of [topics.bars, topics.latestPrice]) {
      const sent = messages.filter((m) => m.topic === topic).map((m) => m.value);
      const read = (await readTopic(bootstrap, topic)).map((r) => r.payload);
      assert.deepEqual(read, sent, topic);
    }
  } finally {
    await producer.disconnect();
    await admin.disconnect();
    await testEnv.cleanup();
  }
});
