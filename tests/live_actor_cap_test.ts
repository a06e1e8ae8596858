/**
 * The live-actor cap on a real ActorConsumer (real Kafka, Redis and ClickHouse): a backlog of
 * new keys on several partitions, whose batches the consumer applies concurrently, never
 * takes the live actors past the cap, and every key still counts its event once.
 */
import assert from "node:assert/strict";
import { Partitioners } from "../stores/kafkajs.ts";
import { counterHarness } from "./counter_kind.ts";
import { pollUntil } from "./support.ts";

const CAP = 400;
const PARTITIONS = 6;
const KEYS_PER_PARTITION = 300;

Deno.test({
  name: "a backlog of new keys on 6 partitions stays within the live-actor cap",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    let liveNow = () => 0;
    let maxLive = 0;
    const { topic, kafka, consumer, projection, close } = await counterHarness(PARTITIONS, {
      config: { DATA_PROC_MAX_LIVE_ACTORS: String(CAP) },
      // Sampled as each key's events are applied: the peak is between two batches' ends.
      onKeyEvents: () => {
        maxLive = Math.max(maxLive, liveNow());
      },
    });
    liveNow = () => consumer.partitions.reduce((n, p) => n + p.liveActors, 0);
    const keyOf = (p: number, i: number) => `k${p}-${i}`;
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    try {
      // A backlog: every partition's keys are in the first fetch, so its batches start together.
      for (let p = 0; p < PARTITIONS; p++) {
        await producer.send({
          topic,
          acks: -1,
          messages: Array.from({ length: KEYS_PER_PARTITION }, (_, i) => ({
            partition: p,
            key: keyOf(p, i),
            value: JSON.stringify({ key: keyOf(p, i) }),
          })),
        });
      }
      await consumer.start();
      await pollUntil("every counter partition applied", () => {
        const parts = consumer.partitions.filter((p) => p.topic === topic);
        const done = parts.length === PARTITIONS &&
          parts.every((p) => p.processedOffset === KEYS_PER_PARTITION - 1);
        return Promise.resolve(done ? true : undefined);
      });
      // Each batch holds a partition's 300 keys: room is made for them before they are applied.
      assert.ok(maxLive <= CAP, `live actors reached ${maxLive}, over the cap (${CAP})`);
      assert.ok(
        maxLive > CAP - KEYS_PER_PARTITION,
        `the cap was never approached (${maxLive}): nothing was tested`,
      );
    } finally {
      await consumer.stop();
      await producer.disconnect();
    }
    try {
      for (let p = 0; p < PARTITIONS; p++) {
        for (const i of [0, KEYS_PER_PARTITION - 1]) {
          assert.deepEqual((await projection(keyOf(p, i)))?.count, 1, keyOf(p, i));
        }
      }
    } finally {
      await close();
    }
  },
});
