/**
 * Replay of a key range on this node: for every owned partition of the kind, hold back the
 * live events of the matching keys (flushes then store and commit the position where the
 * hold began, so a crash fetches the held events again), rebuild those keys from the whole
 * retained history of the partition up to the last offset applied live, then either report
 * how the rebuilt state differs from what is stored (dry run) or swap the rebuilt actors in,
 * with versions above everything stored, and flush. Held live events are applied after the
 * swap, so none is lost or counted twice; other keys never stop.
 *
 * The rebuild runs in a worker thread of its own (supervisors/replay_worker.ts), so its work
 * and garbage stay off this thread's live keys; this thread holds, answers its version bases,
 * and swaps in what it returns.
 *
 * Stored results are replaced, never deleted first: the rebuilt rows win by version, and
 * what the rebuild no longer produces is deleted only once the new state is stored.
 * `fromTimeMs` limits which bars are written again (those starting at or after the start of
 * the largest window that holds it); the state itself is always rebuilt from the start of the
 * log, so every bar, latest price, curve and the dedup memory equal a full rebuild.
 */
import type { Kafka } from "kafkajs";
import type { ActorOutputs } from "../actors/actor_kinds.ts";
import { type ActorKindDefinition, kindSettings, storedShape } from "../actors/kinds/kind.ts";
import { kindOf } from "../actors/kinds/registry.ts";
import type { KeyActor } from "../actors/key_actor.ts";
import type { Config } from "../config/config.ts";
import { emptyClockState } from "../actors/event_clock.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { type ClickHouseClient, queryRows } from "../stores/clickhouse.ts";
import {
  deleteOlder,
  projectionKeys,
  type ProjectionStoreDeps,
  storedMaxVersions,
} from "../stores/projection_store.ts";
import type { Redis } from "../stores/redis.ts";
import type { RedisKeys } from "../stores/redis_keys.ts";
import { sqlIdentifier, sqlNumber, sqlString } from "../stores/sql.ts";
import type { ActorConsumer } from "./actor_consumer.ts";
import { clientIdOf } from "./group_members.ts";
import type { PartitionSupervisor } from "./partition_supervisor.ts";
import type { RebuildRequest, RebuildResult } from "./replay_rebuild.ts";
import { keyMatcher, type ReplayProgress, type ReplaySpec } from "./replay_spec.ts";
import type { FromRebuildWorker, ToRebuildWorker } from "./replay_worker.ts";

export interface ReplayDifference {
  key: string;
  target: string;
  field: string;
  stored: unknown;
  rebuilt: unknown;
}

export interface ReplayResult {
  partitions: number[];
  keys: string[];
  events: number;
  differences: ReplayDifference[];
}

export interface ReplayDeps {
  config: Config;
  kafka: Kafka;
  consumer: ActorConsumer;
  redis: Redis;
  clickhouse: ClickHouseClient;
  keys: RedisKeys;
  logger: Logger;
  onProgress?: (progress: ReplayProgress) => void;
  /** Aborts the replay (cancel): the hold ends with the live actors kept. */
  signal?: AbortSignal;
  /**
   * The partitions an earlier attempt of this share held: a retry must hold them all again
   * (a partition that moved away meanwhile is its new owner's to replay).
   */
  partitions?: readonly number[];
  /** Told which partitions this attempt holds. */
  onHeld?: (partitions: number[]) => void;
}

// deno-lint-ignore no-explicit-any
type AnyPartition = PartitionSupervisor<any>;

/** Partitions restarted or moved before the rebuilt state was stored: nothing was replaced. */
export class PartitionsMovedError extends Error {
  constructor(readonly kind: string, readonly partitions: number[]) {
    super(
      `${kind} partitions ${partitions.join(", ")} moved or restarted before the rebuilt state ` +
        "was stored; their stored results are unchanged",
    );
    this.name = "PartitionsMovedError";
  }
}

export async function replayOnNode(deps: ReplayDeps, spec: ReplaySpec): Promise<ReplayResult> {
  const match = keyMatcher(spec);
  const parts = deps.consumer.partitions.filter((p) => p.kind === spec.kind && p.alive);
  const missing = (deps.partitions ?? []).filter((n) => !parts.some((p) => p.partition === n));
  if (missing.length > 0) throw new PartitionsMovedError(spec.kind, missing);
  deps.onHeld?.(parts.map((p) => p.partition));
  const held: AnyPartition[] = [];
  const ends: number[] = [];
  const releaseAll = (rebuilt?: Map<AnyPartition, Map<string, KeyActor<unknown>>>) =>
    Promise.all(held.map((p) => p.release(rebuilt?.get(p) ?? null)));
  try {
    for (const p of parts) {
      ends.push(await p.hold(match));
      held.push(p);
    }
  } catch (err) {
    await releaseAll();
    throw err;
  }
  const result: ReplayResult = { partitions: [], keys: [], events: 0, differences: [] };
  const kind = kindOf(spec.kind);
  const from = kind.replacedFrom(spec.fromTimeMs, kindSettings(deps.config));
  const rebuilt = new Map<AnyPartition, Map<string, KeyActor<unknown>>>();
  const bases = new Map<string, number>();
  try {
    const request = await rebuildRequest(deps, parts, ends, spec);
    const built = await rebuildInWorker(deps, request, parts);
    const outputsByKey = new Map<string, ActorOutputs>();
    result.partitions = parts.map((p) => p.partition);
    result.events = built.events;
    for (const { partition, keys } of built.partitions) {
      const p = parts.find((x) => x.partition === partition)!;
      const actors = new Map<string, KeyActor<unknown>>();
      for (const k of keys) {
        outputsByKey.set(k.key, k.outputs);
        bases.set(k.key, k.base);
        if (spec.dryRun) continue;
        const actor = p.restoredActor(k.persisted) as KeyActor<unknown>;
        actor.carry(k.outputs);
        actors.set(k.key, actor);
      }
      rebuilt.set(p, actors);
    }
    result.keys = [...outputsByKey.keys()].sort();
    if (spec.dryRun) result.differences = await differences(deps, kind, outputsByKey, from);
    deps.signal?.throwIfAborted();
  } catch (err) {
    await releaseAll();
    throw err;
  }
  if (spec.dryRun) {
    await releaseAll();
    return result;
  }
  await releaseAll(rebuilt);
  await deps.consumer.flush();
  const moved = parts.filter((p) => !p.alive).map((p) => p.partition);
  if (moved.length > 0) throw new PartitionsMovedError(spec.kind, moved);
  // The new state is durable: what it did not write again is stale.
  await deleteOlder(projectionStore(deps), storedShapeOf(kind, deps), bases, from);
  return result;
}

function storedShapeOf(kind: ActorKindDefinition, deps: Pick<ReplayDeps, "config">) {
  return storedShape(kind, kindSettings(deps.config));
}

function projectionStore(deps: ReplayDeps): ProjectionStoreDeps {
  return {
    config: deps.config,
    redis: deps.redis,
    clickhouse: deps.clickhouse,
    keys: deps.keys,
  };
}

/**
 * What the rebuild reads: each held partition from its first retained record to the offset
 * it had applied when the hold began; records below the log start are gone, and a stored
 * checkpoint tells the clock they had built.
 */
async function rebuildRequest(
  deps: ReplayDeps,
  parts: AnyPartition[],
  ends: number[],
  spec: ReplaySpec,
): Promise<RebuildRequest> {
  const topic = parts[0]?.topic ?? "";
  if (parts.length === 0) return { topic, topicPartitions: [], spec, partitions: [] };
  const admin = deps.kafka.admin();
  await admin.connect();
  let lows: Map<number, number>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    lows = new Map(offsets.map((o) => [o.partition, Number(o.low)]));
  } finally {
    await admin.disconnect();
  }
  const partitions = await Promise.all(parts.map(async (p, i) => {
    const from = lows.get(p.partition) ?? 0;
    const end = ends[i]!;
    const checkpoint = from > 0 && end >= from
      ? await deps.consumer.clockCheckpointAtOrBefore(topic, p.partition, from - 1)
      : undefined;
    return {
      partition: p.partition,
      from,
      end,
      clock: checkpoint?.clock ?? emptyClockState(),
      clockIncludes: checkpoint?.offset ?? -1,
      clockAtEnd: p.clock,
    };
  }));
  return { topic, topicPartitions: [...lows.keys()], spec, partitions };
}

/** How long a cancelled rebuild may take to stop before its worker is ended anyway. */
const CANCEL_GRACE_MS = 5000;
/** How often the rebuild is told how many live batches this thread has applied. */
const LIVE_REPORT_MS = 100;

/**
 * Runs the rebuild in a worker thread of its own and answers what it asks of this thread:
 * the version bases of the keys it meets (from the live actors and the stores).
 */
async function rebuildInWorker(
  deps: ReplayDeps,
  request: RebuildRequest,
  parts: AnyPartition[],
): Promise<RebuildResult> {
  if (request.partitions.every((p) => p.end < p.from)) {
    return { partitions: request.partitions.map((p) => ({ ...p, keys: [] })), events: 0 };
  }
  const kind = kindOf(request.spec.kind);
  const worker = new Worker(new URL("./replay_worker.ts", import.meta.url).href, {
    type: "module",
  });
  const send = (message: ToRebuildWorker) => worker.postMessage(message);
  const timers: ReturnType<typeof setTimeout>[] = [];
  let onAbort = () => {};
  try {
    return await new Promise<RebuildResult>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<FromRebuildWorker>) => {
        const message = e.data;
        if (message.type === "bases") {
          const p = parts.find((x) => x.partition === message.partition)!;
          versionBases(deps, kind, p, message.keys).then(
            (bases) => send({ type: "bases", id: message.id, bases: [...bases] }),
            reject,
          );
        } else if (message.type === "progress") deps.onProgress?.(message.progress);
        else if (message.type === "sinkFailures") {
          metrics.sinkFailures.labels(message.sink).inc(message.count);
        } else if (message.type === "done") resolve(message.result);
        else reject(deps.signal?.aborted ? deps.signal.reason : new Error(message.message));
      };
      worker.onerror = (e: ErrorEvent) => {
        // Handled here: unhandled, a worker's error would end this thread too.
        e.preventDefault();
        reject(new Error(`replay worker failed: ${e.message}`));
      };
      onAbort = () => {
        send({ type: "cancel" });
        timers.push(setTimeout(() => reject(deps.signal?.reason), CANCEL_GRACE_MS));
      };
      if (deps.signal?.aborted) onAbort();
      else deps.signal?.addEventListener("abort", onAbort, { once: true });
      timers.push(setInterval(() => {
        send({ type: "live", batches: deps.consumer.batchesApplied });
      }, LIVE_REPORT_MS));
      send({
        type: "start",
        config: deps.config,
        clientId: clientIdOf(`${deps.config.DATA_PROC_NODE_ID || "node"}-replay`),
        request,
      });
    });
  } finally {
    for (const t of timers) clearTimeout(t);
    deps.signal?.removeEventListener("abort", onAbort);
    worker.terminate();
  }
}

/** The first version of each key's rebuilt writes: above what it issued or what is stored. */
async function versionBases(
  deps: ReplayDeps,
  kind: ActorKindDefinition,
  p: AnyPartition,
  keys: string[],
): Promise<Map<string, number>> {
  const stored = await storedMaxVersions(projectionStore(deps), storedShapeOf(kind, deps), keys);
  const bases = new Map<string, number>();
  for (const key of keys) {
    bases.set(key, Math.max(await p.maxVersion(key), stored.get(key) ?? 0) + 1);
  }
  return bases;
}

const IGNORED_FIELDS = new Set(["version", "final"]);

function compareObjects(
  key: string,
  target: string,
  stored: Record<string, unknown> | null,
  rebuilt: Record<string, unknown> | null,
  out: ReplayDifference[],
): void {
  if (stored === null || rebuilt === null) {
    if (stored !== rebuilt) out.push({ key, target, field: "*", stored, rebuilt });
    return;
  }
  for (const field of new Set([...Object.keys(stored), ...Object.keys(rebuilt)])) {
    if (IGNORED_FIELDS.has(field)) continue;
    const a = stored[field];
    const b = rebuilt[field];
    const same = typeof a === "number" && typeof b === "number"
      ? Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b))
      : JSON.stringify(a) === JSON.stringify(b);
    if (!same) out.push({ key, target, field, stored: a, rebuilt: b });
  }
}

/**
 * Dry run: how the rebuilt results differ from Redis projections and from the gold rows a
 * replay would write again (those at or after `from`).
 */
async function differences(
  deps: ReplayDeps,
  kind: ActorKindDefinition,
  outputsByKey: Map<string, ActorOutputs>,
  from: number,
): Promise<ReplayDifference[]> {
  const out: ReplayDifference[] = [];
  const prefix = deps.config.DATA_PROC_REDIS_PREFIX;
  const gold = sqlIdentifier(deps.config.DATA_PROC_CLICKHOUSE_GOLD_DB);
  const { table, idColumn, timeColumn } = kind.gold;
  const { columns, idOf, valuesOf } = kind.goldComparison;
  const stores = projectionStore(deps);
  for (const [key, outputs] of outputsByKey) {
    const rebuiltProjections = new Map(
      outputs.projections.map((p) => [p.key, JSON.parse(p.value)]),
    );
    const keys = projectionKeys(stores, storedShapeOf(kind, deps), key)
      .map((k) => k.slice(prefix.length));
    const stored = await deps.redis.mget(keys.map((k) => prefix + k));
    keys.forEach((k, i) => {
      const rebuilt = rebuiltProjections.get(k) ?? null;
      const current = stored[i] ? JSON.parse(stored[i]!) : null;
      if (rebuilt === null && current === null) return;
      compareObjects(key, k, current, rebuilt, out);
    });
    const rows = await queryRows<Record<string, unknown>>(
      deps.clickhouse,
      `SELECT ${columns} FROM ${gold}.${sqlIdentifier(table)} FINAL
       WHERE ${sqlIdentifier(idColumn)} = ${sqlString(key)}
         AND ${sqlIdentifier(timeColumn)} >= ${sqlNumber(from)}`,
    );
    const storedRows = new Map(rows.map((r) => [idOf(r), r]));
    const rebuiltRows = new Map(
      [...outputs.barRows, ...outputs.curveRows].map((r) => [idOf(r), r]),
    );
    for (const id of new Set([...storedRows.keys(), ...rebuiltRows.keys()])) {
      const s = storedRows.get(id);
      const r = rebuiltRows.get(id);
      // Named by the contract's table name, whatever the configured database.
      compareObjects(
        key,
        `gold.${table} ${id}`,
        s ? valuesOf(s) : null,
        r ? valuesOf(r) : null,
        out,
      );
    }
  }
  return out;
}
