/**
 * A small third actor kind for tests: counts the events of each key and projects the count.
 * An event marked `poison` makes its machine throw (to test crash handling). With it, a fresh
 * environment and a real ActorConsumer running the product's kinds and this one.
 */
import { assign, createActor, emit, setup } from "xstate";
import { z } from "zod";
import type { KindAdapter } from "../actors/actor_kinds.ts";
import type { ActorKindDefinition } from "../actors/kinds/kind.ts";
import { KINDS } from "../actors/kinds/registry.ts";
import { createLogger } from "../observability/logger.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka, ensureTopicNames } from "../stores/kafka.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { ActorConsumer, type ActorConsumerDeps } from "../supervisors/actor_consumer.ts";
import { createTopics } from "./actor_harness.ts";
import { freshEnv } from "./support.ts";

const CountEvent = z.object({ key: z.string().min(1), poison: z.boolean().optional() });
type CountEvent = z.infer<typeof CountEvent>;

interface CounterContext {
  count: number;
  version: number;
  changed: boolean;
}

const counterMachine = setup({
  types: {
    context: {} as CounterContext,
    input: {} as { versionBase: number },
    events: {} as
      | { type: "EVENTS"; n: number; poison: boolean }
      | { type: "RESET"; versionBase: number }
      | { type: "COLLECT" },
    emitted: {} as { type: "changed"; count: number; version: number },
  },
}).createMachine({
  context: ({ input }) => ({ count: 0, version: input.versionBase, changed: false }),
  on: {
    EVENTS: {
      actions: assign(({ context, event }) => {
        if (event.poison) throw new Error("counter cannot digest a poison event");
        return {
          count: context.count + event.n,
          version: context.version + event.n,
          changed: true,
        };
      }),
    },
    RESET: {
      actions: assign(({ event }) => ({ count: 0, version: event.versionBase, changed: true })),
    },
    // The machine hands its change to the flush and forgets it.
    COLLECT: {
      guard: ({ context }) => context.changed,
      actions: [
        emit(({ context }) => ({
          type: "changed",
          count: context.count,
          version: context.version,
        })),
        assign({ changed: false }),
      ],
    },
  },
});

function counterAdapter(): KindAdapter<CountEvent> {
  const context = (actor: { getSnapshot(): { context: unknown } }) =>
    actor.getSnapshot().context as CounterContext;
  // Emitted within `send`: the slot holds what the last COLLECT emitted.
  let changed: { count: number; version: number } | null = null;
  let live = 0;
  return {
    kind: "counter",
    spawn(_key, persisted, versionBase) {
      const actor = createActor(counterMachine, {
        input: { versionBase: versionBase ?? 0 },
        ...(persisted ? { snapshot: persisted as never } : {}),
      });
      actor.on("changed", (e) => changed = e);
      live++;
      return actor.start();
    },
    apply(actor, events) {
      actor.send({
        type: "EVENTS",
        n: events.length,
        poison: events.some((e) => e.value.poison === true),
      });
      return [];
    },
    collect(actor, key) {
      const out = { projections: [], barRows: [], curveRows: [], messages: [] } as ReturnType<
        KindAdapter<CountEvent>["collect"]
      >;
      changed = null;
      actor.send({ type: "COLLECT" });
      const taken = changed as { count: number; version: number } | null;
      if (taken === null) return out;
      out.projections.push({
        key: `projection:counter:${key}`,
        order: 0,
        version: taken.version,
        value: JSON.stringify({ key, count: taken.count, version: taken.version }),
      });
      return out;
    },
    stop(actor) {
      live--;
      actor.stop();
    },
    machines: () => live,
    nextCloseAt: () => null,
    windowClosed: () => false,
    advance: () => {},
    reset: (actor, versionBase) => actor.send({ type: "RESET", versionBase }),
    maxVersion: (actor) => context(actor).version,
    clockMs: () => null,
    summarize: (event) => ({ offset: event.offset }),
  };
}

export function counterKind(topic: string): ActorKindDefinition<CountEvent> {
  return {
    name: "counter",
    inputTopic: () => topic,
    schema: CountEvent,
    keyOf: (e) => e.key,
    adapter: counterAdapter,
    projectionKeys: (key) => [`projection:counter:${key}`],
    gold: { table: "counters", idColumn: "key", timeColumn: "event_time_ms" },
    replacedFrom: () => 0,
    goldComparison: { columns: "key", idOf: (row) => String(row.key), valuesOf: () => ({}) },
  };
}

/**
 * A fresh environment with the counter's topic and a consumer (not started) running it;
 * `config` overrides DATA_PROC_* values, `onKeyEvents` sees each key's events of a batch.
 */
export async function counterHarness(
  partitions: number,
  options: {
    config?: Record<string, string>;
    onKeyEvents?: ActorConsumerDeps["onKeyEvents"];
  } = {},
) {
  const env = await freshEnv({ DATA_PROC_NORMALIZER_ENABLED: "false", ...options.config });
  await createTopics(env);
  const topic = `${env.config.DATA_PROC_TOPIC_PREFIX}test.counter.v1`;
  const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopicNames(admin, [topic], partitions);
  await admin.disconnect();
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
    ...(options.onKeyEvents ? { onKeyEvents: options.onKeyEvents } : {}),
  });
  return {
    env,
    topic,
    kafka,
    consumer,
    /** The key's counter projection in Redis, or null. */
    async projection(key: string): Promise<{ count: number; version: number } | null> {
      const raw = await redis.get(keys.prefixed(`projection:counter:${key}`));
      return raw ? JSON.parse(raw) : null;
    },
    async close(): Promise<void> {
      await closeRedis(redis);
      await clickhouse.close();
      await env.cleanup();
    },
  };
}
