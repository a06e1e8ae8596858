/** ensureTopics against the local broker: topics usable at once, even when the broker is busy. */
import assert from "node:assert/strict";
import { createKafka, ensureTopics, topicNames, waitForLeaders } from "../stores/kafka.ts";
import { BASE_ENV, uniqueId } from "./support.ts";

Deno.test("ensureTopics run 6 times at once returns only when every partition of every topic has a leader", async () => {
  // Right after creating a topic the broker may answer "does not host this topic-partition";
  // kafkajs's own wait for leaders gave up on that (the CI of stop 24). Six at once, as test
  // files and nodes create theirs.
  const kafka = createKafka(BASE_ENV.DATA_PROC_KAFKA_BOOTSTRAP, "kafka-topics-test");
  const sets = Array.from({ length: 6 }, () => topicNames(`t${uniqueId()}.`));
  const admins = sets.map(() => kafka.admin());
  try {
    await Promise.all(admins.map((admin) => admin.connect()));
    await Promise.all(sets.map((topics, i) => ensureTopics(admins[i]!, topics, 6)));
    const names = sets.flatMap((topics) => Object.values(topics));
    const { topics: found } = await admins[0]!.fetchTopicMetadata({ topics: names });
    assert.equal(found.length, names.length);
    for (const topic of found) {
      assert.deepEqual(topic.partitions.map((p) => p.partitionId).sort(), [0, 1, 2, 3, 4, 5]);
      assert.ok(
        topic.partitions.every((p) => p.leader >= 0),
        `${topic.name} has a leader per partition`,
      );
    }
    // A second call finds them all and returns at once.
    await ensureTopics(admins[0]!, sets[0]!, 6);
  } finally {
    await Promise.all(admins.map((admin) => admin.disconnect()));
  }
});

Deno.test("topics from ensureTopics take a produce on every partition at once, with no retry", async () => {
  // The broker names a new topic's leaders a moment before it leads the partitions; a Produce
  // in that window failed, and kafkajs's retry of the whole request wrote twice what the
  // request's other partitions had taken (a duplicated DLQ record in normalizer_watermark_test).
  const kafka = createKafka(BASE_ENV.DATA_PROC_KAFKA_BOOTSTRAP, "kafka-topics-test");
  const admin = kafka.admin();
  const producer = kafka.producer({ retry: { retries: 0 } });
  const made: string[] = [];
  try {
    await Promise.all([admin.connect(), producer.connect()]);
    for (let round = 0; round < 3; round++) {
      const topics = topicNames(`t${uniqueId()}.`);
      made.push(...Object.values(topics));
      await ensureTopics(admin, topics, 3);
      const results = await producer.sendBatch({
        acks: -1,
        topicMessages: Object.values(topics).map((topic) => ({
          topic,
          messages: [0, 1, 2].map((partition) => ({ partition, value: `round ${round}` })),
        })),
      });
      assert.equal(results.length, 8 * 3);
      assert.ok(results.every((r) => r.errorCode === 0 && r.baseOffset === "0"));
    }
  } finally {
    await admin.deleteTopics({ topics: made }).catch(() => {});
    await Promise.all([admin.disconnect(), producer.disconnect()]);
  }
});

Deno.test("waitForLeaders takes a topic the broker does not host yet as 'not yet', until it exists or the deadline", async () => {
  const kafka = createKafka(BASE_ENV.DATA_PROC_KAFKA_BOOTSTRAP, "kafka-topics-test");
  const admin = kafka.admin();
  const creator = kafka.admin();
  const topic = `t${uniqueId()}.leaders`;
  try {
    await Promise.all([admin.connect(), creator.connect()]);
    // The broker does not create topics on demand: a missing topic is an error answer.
    await assert.rejects(
      admin.fetchTopicMetadata({ topics: [topic] }),
      /does not host this topic-partition/,
    );
    await assert.rejects(
      waitForLeaders(admin, [topic], { timeoutMs: 300 }),
      (err: Error) => err.message.includes(topic) && /does not host/.test(err.message),
    );
    const waiting = waitForLeaders(admin, [topic], { timeoutMs: 30_000 });
    await creator.createTopics({ waitForLeaders: false, topics: [{ topic, numPartitions: 4 }] });
    await waiting;
    const { topics: [found] } = await admin.fetchTopicMetadata({ topics: [topic] });
    assert.equal(found?.partitions.filter((p) => p.leader >= 0).length, 4);
  } finally {
    await Promise.all([admin.disconnect(), creator.disconnect()]);
  }
});
