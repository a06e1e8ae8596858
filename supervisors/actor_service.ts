/**
 * What the HTTP layer may ask of this node's actors and their stored state, and nothing
 * more: live keys and inspections, stored snapshots, which partitions are here, and the
 * reset use case. Handlers map these answers to HTTP; they never reach the actor consumer or
 * the stores themselves. Wired in app/node.ts.
 */
import type { ActorKind } from "../actors/actor_kinds.ts";
import { kindSettings, storedShape } from "../actors/kinds/kind.ts";
import { kindOf } from "../actors/kinds/registry.ts";
import type { Config } from "../config/config.ts";
import type { PersistedActor } from "../messages/persisted_actor.ts";
import type { Logger } from "../observability/logger.ts";
import type { ActorStore } from "../stores/actor_store.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import { topicNames } from "../stores/kafka.ts";
import { type DeletedOlder, deleteOlder, storedMaxVersions } from "../stores/projection_store.ts";
import type { Redis } from "../stores/redis.ts";
import type { ActorConsumer, PartitionView } from "./actor_consumer.ts";

export type { PartitionView };

export interface LiveKey {
  kind: ActorKind;
  key: string;
  partition: number;
}

/** How a reset ended (HTTP maps each to an answer). */
export type ResetResult =
  /** No node holds the partition here right now. */
  | { status: "not_owned" }
  /** The key has no actor here. */
  | { status: "unknown" }
  /** Its flush was fenced: the new owner holds the state from before; nothing was cleared. */
  | { status: "moved" }
  /** A replay holds the key. */
  | { status: "replaying" }
  | { status: "failed"; error: Error }
  /** State reset, but stored projections or rows above it were not all cleared. */
  | { status: "incomplete"; versionBase: number; error: Error }
  | { status: "done"; versionBase: number; cleared: DeletedOlder };

export interface ActorService {
  /** Keys live in this node's memory (alive partitions only), for the given kinds. */
  liveKeys(kinds: readonly ActorKind[]): LiveKey[];
  /** A live actor's operator view, judged by its partition's clock now. */
  inspectLive(
    kind: ActorKind,
    key: string,
  ): LiveKey & { inspect: Record<string, unknown> } | undefined;
  /** Calls `onKey` with every stored snapshot's key of `kind` that starts with `prefix`. */
  scanStoredKeys(kind: ActorKind, prefix: string, onKey: (key: string) => void): Promise<void>;
  loadStored(kind: ActorKind, keys: string[]): Promise<Map<string, PersistedActor>>;
  /** The kind's input topic (with the configured prefix). */
  topicOf(kind: ActorKind): string;
  /** Kafka assigns this node the kind's partition (even while it is being claimed). */
  assignedHere(kind: ActorKind, partition: number): boolean;
  /** The clock of the kind's partition when it is owned and running here. */
  ownedClockMs(kind: ActorKind, partition: number): number | null | undefined;
  partitionViews(): PartitionView[];
  /** Resets one key owned here: versions above everything stored, then stale rows cleared. */
  reset(kind: ActorKind, key: string, partition: number): Promise<ResetResult>;
}

function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (ch) => `\\${ch}`);
}

export function actorService(d: {
  config: Config;
  logger: Logger;
  store: ActorStore;
  redis: Redis;
  clickhouse: ClickHouseClient;
  /** The actor consumer, when this node runs one (not before it started). */
  actors: () => ActorConsumer | undefined;
}): ActorService {
  const topics = topicNames(d.config.DATA_PROC_TOPIC_PREFIX);
  const topicOf = (kind: ActorKind) => kindOf(kind).inputTopic(topics);
  const stores = { config: d.config, redis: d.redis, clickhouse: d.clickhouse, keys: d.store.keys };
  return {
    liveKeys(kinds) {
      const found: LiveKey[] = [];
      for (const p of d.actors()?.partitions ?? []) {
        if (!p.alive || !kinds.includes(p.kind)) continue;
        for (const key of p.keys()) found.push({ kind: p.kind, key, partition: p.partition });
      }
      return found;
    },
    inspectLive(kind, key) {
      const live = d.actors()?.findLive(kind, key);
      if (!live) return undefined;
      // The context holds the clock the actor last saw; the partition's is the one that judges.
      const { clockMs, quietMs } = live.partition.clock;
      return {
        kind,
        key,
        partition: live.actor.partition,
        inspect: { ...live.actor.inspect(), event_time_clock_ms: clockMs, quiet_close_ms: quietMs },
      };
    },
    async scanStoredKeys(kind, prefix, onKey) {
      const base = d.store.snapshotKey(kind, "");
      const pattern = `${globEscape(base)}${globEscape(prefix)}*`;
      let cursor = "0";
      do {
        const [next, found] = await d.redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        for (const redisKey of found) onKey(redisKey.slice(base.length));
      } while (cursor !== "0");
    },
    loadStored: (kind, keys) => d.store.load(kind, keys),
    topicOf,
    assignedHere(kind, partition) {
      const topic = topicOf(kind);
      return d.actors()?.assignment().some((a) => a.topic === topic && a.partition === partition) ??
        false;
    },
    ownedClockMs(kind, partition) {
      return d.actors()?.ownedPartition(kind, partition)?.clock.clockMs;
    },
    partitionViews: () => d.actors()?.partitionViews() ?? [],
    async reset(kind, key, partition) {
      const consumer = d.actors();
      if (!consumer?.ownedPartition(kind, partition)) return { status: "not_owned" };
      const shape = storedShape(kindOf(kind), kindSettings(d.config));
      let outcome;
      try {
        const stored = (await storedMaxVersions(stores, shape, [key])).get(key) ?? 0;
        outcome = await consumer.reset(kind, key, partition, stored);
      } catch (err) {
        d.logger.error("actor reset failed", { kind, key, partition, err });
        return { status: "failed", error: err as Error };
      }
      if (outcome.status !== "reset") return outcome;
      const versionBase = outcome.versionBase;
      try {
        // The reset is stored: every stored version below its base is stale.
        const cleared = await deleteOlder(stores, shape, new Map([[key, versionBase]]));
        d.logger.info("actor reset", { kind, key, partition, versionBase });
        return { status: "done", versionBase, cleared };
      } catch (err) {
        d.logger.error("clearing projections after a reset failed", { kind, key, partition, err });
        return { status: "incomplete", versionBase, error: err as Error };
      }
    },
  };
}
