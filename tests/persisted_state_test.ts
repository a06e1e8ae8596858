/**
 * State read back from Redis is decoded, not cast: a snapshot, partition state or clock
 * checkpoint that does not decode is logged and treated as absent (real Redis), a key
 * whose snapshot is corrupted starts afresh in its partition instead of crashing it, and a
 * node entry that does not decode is left out of the registry.
 */
import assert from "node:assert/strict";
import type { KafkaMessage } from "kafkajs";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import type { LogFields, Logger } from "../observability/logger.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { closeRedis, createRedis, type Redis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { NodeRegistry } from "../supervisors/node_registry.ts";
import { instrumentPartition, PARTITION_TOPIC as TOPIC } from "./partition_fixture.ts";
import { freshEnv } from "./support.ts";

const T0 = Date.UTC(2027, 0, 15, 10, 0, 0);

/** A logger that keeps its warnings, so a test can see what was reported. */
function capturingLogger(): Logger & { warnings: { msg: string; fields: LogFields }[] } {
  const warnings: { msg: string; fields: LogFields }[] = [];
  const logger = {
    warnings,
    debug: () => {},
    info: () => {},
    warn: (msg: string, fields: LogFields = {}) => void warnings.push({ msg, fields }),
    error: (msg: string, fields: LogFields = {}) => void warnings.push({ msg, fields }),
    child: () => logger,
  };
  return logger;
}

function tickMessage(offset: number, instrument: string, price: number): KafkaMessage {
  const tick: NormalizedTick = {
    event_id: `${instrument}-${offset}`,
    instrument_id: instrument,
    event_time_ms: T0 + offset * 1000,
    price,
    size: 1,
    source: "test",
    symbol: instrument,
    commodity: null,
    region: null,
    currency: null,
    unit: null,
    ingest_time_ms: 0,
  };
  return {
    key: null,
    value: new TextEncoder().encode(JSON.stringify(tick)) as unknown as KafkaMessage["value"],
    timestamp: String(T0),
    attributes: 0,
    offset: String(offset),
    headers: {},
  } as KafkaMessage;
}

async function withStore(
  fn: (s: {
    redis: Redis;
    keys: ReturnType<typeof redisKeys>;
    store: ActorStore;
    logger: ReturnType<typeof capturingLogger>;
  }) => Promise<void>,
): Promise<void> {
  const env = await freshEnv();
  const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
  const keys = redisKeys(env.config.DATA_PROC_REDIS_PREFIX, env.config.DATA_PROC_GROUP_ID);
  const logger = capturingLogger();
  try {
    await fn({ redis, keys, store: new ActorStore(redis, keys, { logger }), logger });
  } finally {
    await closeRedis(redis);
    await env.cleanup();
  }
}

Deno.test({
  name:
    "actor store: a snapshot, partition state or clock checkpoint that does not decode is absent, with a warning",
  // ioredis may leave its own connect timer pending for a moment after quit().
  sanitizeOps: false,
  fn: () =>
    withStore(async ({ redis, keys, store, logger }) => {
      const good = {
        kind: "instrument",
        key: "GOOD",
        partition: 0,
        offset: 7,
        machine: { status: "active", value: {}, context: { applied: 1 } },
        history: [],
        restarts: 0,
        saved_at_ms: T0,
      };
      await redis.set(keys.snapshot("instrument", "GOOD"), JSON.stringify(good));
      await redis.set(keys.snapshot("instrument", "NOT-JSON"), "{ half a snapshot");
      await redis.set(
        keys.snapshot("instrument", "WRONG-SHAPE"),
        JSON.stringify({ ...good, key: "WRONG-SHAPE", offset: "7", machine: "garbage" }),
      );
      const loaded = await store.load("instrument", ["GOOD", "NOT-JSON", "WRONG-SHAPE", "NONE"]);
      assert.deepEqual([...loaded.keys()], ["GOOD"]);
      assert.deepEqual(loaded.get("GOOD"), good);
      assert.deepEqual(
        logger.warnings.map((w) => [w.msg, w.fields.key]),
        [
          [
            "stored value is not JSON; treated as absent",
            keys.snapshot("instrument", "NOT-JSON"),
          ],
          [
            "stored value does not decode; treated as absent",
            keys.snapshot("instrument", "WRONG-SHAPE"),
          ],
        ],
      );
      assert.match(String(logger.warnings[1]!.fields.error), /offset|machine/);

      logger.warnings.length = 0;
      await redis.set(keys.partitionState(TOPIC, 0), JSON.stringify({ offset: 3, clock: null }));
      await redis.zadd(keys.clockHistory(TOPIC, 0), 5, "not a checkpoint");
      assert.equal(await store.loadPartition(TOPIC, 0), undefined);
      assert.equal(await store.clockCheckpointAtOrBefore(TOPIC, 0, 10), undefined);
      assert.deepEqual(logger.warnings.map((w) => w.fields.key), [
        keys.partitionState(TOPIC, 0),
        keys.clockHistory(TOPIC, 0),
      ]);
    }),
});

Deno.test({
  name: "a key whose stored snapshot is corrupted starts afresh in its partition, not a crash",
  sanitizeOps: false,
  fn: () =>
    withStore(async ({ redis, keys, store, logger }) => {
      await redis.set(keys.snapshot("instrument", "A"), JSON.stringify({ machine: 42 }));
      const epoch = await store.claim(TOPIC, 0);
      const p = instrumentPartition(store, { epoch, logger });
      try {
        await p.handle([tickMessage(10, "A", 100), tickMessage(11, "A", 101)]);
        const plan = await p.plan({ snapshot: true });
        const latest = plan.outputs.projections.find((x) => x.key.endsWith("latest:A"));
        assert.equal(JSON.parse(latest!.value).price, 101);
        assert.equal(plan.dlq.length, 0);
        assert.equal(p.actor("A")!.restarts, 0);
        assert.ok(
          logger.warnings.some((w) => w.fields.key === keys.snapshot("instrument", "A")),
          "the corrupted snapshot is reported",
        );
        // The new snapshot decodes again.
        assert.ok(
          await store.fencedFlush(TOPIC, 0, epoch, {
            projections: [],
            snapshots: plan.snapshots,
          }),
        );
        assert.ok((await store.load("instrument", ["A"])).get("A"));
      } finally {
        await p.stop();
      }
    }),
});

Deno.test({
  name: "node registry leaves out an entry that does not decode, with a warning",
  sanitizeOps: false,
  fn: () =>
    withStore(async ({ redis, keys, logger }) => {
      const nodes = new NodeRegistry(redis, keys, { logger });
      const good = {
        node_id: "n1",
        url: "http://127.0.0.1:8081",
        partitions: [{ topic: TOPIC, partition: 0 }],
        updated_at_ms: T0,
      };
      await nodes.announce(good);
      // Written by hand as an announcement would be: the entry and its id in the index.
      const listed = Date.now() + 60_000;
      await redis.set(keys.node("n2"), JSON.stringify({ node_id: "n2", partitions: "all" }));
      await redis.set(keys.node("n3"), "nope");
      await redis.zadd(keys.nodeIndex(), listed, "n2", listed, "n3");
      assert.deepEqual(await nodes.list(), [good]);
      assert.deepEqual(logger.warnings.map((w) => w.fields.key).sort(), [
        keys.node("n2"),
        keys.node("n3"),
      ]);
    }),
});
