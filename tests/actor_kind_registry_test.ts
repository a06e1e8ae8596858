/**
 * Adding an actor kind is one definition (actors/kinds/<kind>.ts) and one registry line: the
 * runtime, the flush and the stores need nothing else. Shown with a small third kind
 * (tests/counter_kind.ts), run by a real ActorConsumer against real Kafka, Redis and ClickHouse beside the two
 * kinds of the product.
 */
import assert from "node:assert/strict";
import { Partitioners } from "../stores/kafkajs.ts";
import { counterHarness } from "./counter_kind.ts";
import { pollUntil } from "./support.ts";

Deno.test({
  name: "a third actor kind defined in one place runs beside the others: events in, projection out",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { topic, kafka, consumer, projection, close } = await counterHarness(2);
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

    try {
      await consumer.start();
      for (const [key, n] of Object.entries(counts)) {
        const value = await pollUntil(`counter projection of ${key}`, async () => {
          const value = await projection(key);
          return value?.count === n ? value : undefined;
        });
        assert.equal(value.version, n);
      }
      // The runtime knows the kind: its partitions, actors and inspection.
      assert.ok(consumer.partitions.some((p) => p.kind === "counter"));
      const live = consumer.findLive("counter", "b");
      assert.equal(live?.actor.inspect().applied_offset !== undefined, true);
    } finally {
      await consumer.stop();
      await close();
    }
  },
});
