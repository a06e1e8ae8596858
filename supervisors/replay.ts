/**
 * Replay of a key range on this node: for every owned partition of the kind, hold back the
 * live events of the matching keys, rebuild those keys from the partition's Kafka history
 * (from `fromTimeMs` up to the last offset applied live), then either report how the rebuilt
 * state differs from the stored projections (dry run) or swap the rebuilt actors in, with
 * versions above everything stored, and flush. Held live events are applied afterwards, so
 * none is lost or counted twice; other keys never stop.
 */
import type { Kafka, KafkaMessage } from "kafkajs";
import type { ActorKind, ActorOutputs, KeyedEvent } from "../actors/actor_kinds.ts";
import type { KeyActor } from "../actors/key_actor.ts";
import type { Config } from "../config/config.ts";
import {
  applyWatermark,
  currentClock,
  emptyClockState,
  type EventClock,
} from "../actors/event_clock.ts";
import { decodeJson } from "../messages/decode.ts";
import type { ClockState } from "../messages/partition_state.ts";
import { isControlRecord, WatermarkRecord } from "../messages/watermark.ts";
import { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import type { Logger } from "../observability/logger.ts";
import { type ClickHouseClient, queryRows } from "../stores/clickhouse.ts";
import type { Redis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { sqlIdentifier, sqlNumber, sqlString } from "../stores/sql.ts";
import type { ActorConsumer } from "./actor_consumer.ts";
import type { PartitionSupervisor } from "./partition_supervisor.ts";

export interface ReplaySpec {
  kind: ActorKind;
  fromKey?: string;
  toKey?: string;
  prefix?: string;
  fromTimeMs: number;
  dryRun: boolean;
}

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
  logger: Logger;
  onProgress?: (progress: { partitionsDone: number; partitions: number; events: number }) => void;
}

/** The keys a replay covers: an inclusive range or a prefix. */
export function keyMatcher(spec: Pick<ReplaySpec, "fromKey" | "toKey" | "prefix">) {
  if (spec.prefix !== undefined) {
    const prefix = spec.prefix;
    return (key: string) => key.startsWith(prefix);
  }
  const from = spec.fromKey ?? "";
  const to = spec.toKey;
  return (key: string) => key >= from && (to === undefined || key <= to);
}

// deno-lint-ignore no-explicit-any
type AnyPartition = PartitionSupervisor<any>;

export async function replayOnNode(deps: ReplayDeps, spec: ReplaySpec): Promise<ReplayResult> {
  const match = keyMatcher(spec);
  const parts = deps.consumer.partitions.filter((p) => p.kind === spec.kind && p.alive);
  const result: ReplayResult = { partitions: [], keys: [], events: 0, differences: [] };
  const ends = await Promise.all(parts.map((p) => p.hold(match)));
  const rebuiltByPartition = new Map<AnyPartition, Map<string, KeyActor<unknown>>>();
  try {
    const history = await readHistory(deps, parts, ends, spec.fromTimeMs, match, spec.kind);
    for (const p of parts) {
      const read = history.get(p.partition) ?? { events: new Map(), clockAtEnd: p.clock };
      const events = read.events;
      const rebuilt = await rebuild(deps, p, read, spec);
      rebuiltByPartition.set(p, rebuilt);
      result.partitions.push(p.partition);
      for (const [key, list] of events) {
        result.keys.push(key);
        result.events += list.length;
      }
      deps.onProgress?.({
        partitionsDone: result.partitions.length,
        partitions: parts.length,
        events: result.events,
      });
    }
    const outputsByKey = new Map<string, ActorOutputs>();
    for (const rebuilt of rebuiltByPartition.values()) {
      for (const [key, actor] of rebuilt) {
        const out = filterBefore(actor.collect(), spec.fromTimeMs, deps.config);
        outputsByKey.set(key, out);
        if (!spec.dryRun) actor.carry(out);
      }
    }
    if (spec.dryRun) {
      result.differences = await differences(deps, spec.kind, outputsByKey);
    } else {
      await clearStored(deps, spec, [...outputsByKey.keys()]);
    }
  } catch (err) {
    await Promise.all(parts.map((p) => p.release(null)));
    throw err;
  }
  await Promise.all(
    parts.map((p) => p.release(spec.dryRun ? null : rebuiltByPartition.get(p) ?? null)),
  );
  if (!spec.dryRun) await deps.consumer.flush();
  result.keys.sort();
  return result;
}

/** Bars that start before the replay's start were not rebuilt whole: they are not written. */
function filterBefore(out: ActorOutputs, fromTimeMs: number, config: Config): ActorOutputs {
  if (fromTimeMs <= 0) return out;
  const largest = Math.max(...config.DATA_PROC_BAR_WINDOWS.map((w) => w.ms));
  const from = Math.ceil(fromTimeMs / largest) * largest;
  const keep = (start: unknown) => typeof start !== "number" || start >= from;
  return {
    projections: out.projections.filter((p) =>
      !p.key.startsWith("projection:bar:") || keep(p.order)
    ),
    barRows: out.barRows.filter((r) => keep(r.start_ms)),
    curveRows: out.curveRows,
    messages: out.messages.filter((m) => m.topic !== "bars" || keep(JSON.parse(m.value).start_ms)),
  };
}

interface PartitionHistory {
  events: Map<string, KeyedEvent<unknown>[]>;
  /** The partition's clock after the last record read (what the rebuilt keys close by). */
  clockAtEnd: EventClock;
}

/**
 * Reads each partition from the offset at `fromTimeMs` to its end offset (inclusive). Each
 * event gets the partition's clock at its offset, as the live run judged it: the clock is
 * rebuilt from the newest checkpoint at or before the start (or from the beginning) through
 * the watermark records read on the way.
 */
async function readHistory(
  deps: ReplayDeps,
  parts: AnyPartition[],
  ends: number[],
  fromTimeMs: number,
  match: (key: string) => boolean,
  kind: ActorKind,
): Promise<Map<number, PartitionHistory>> {
  const out = new Map<number, PartitionHistory>();
  const wanted = parts.map((p, i) => ({ p, end: ends[i]! })).filter((w) => w.end >= 0);
  if (wanted.length === 0) return out;
  const topic = wanted[0]!.p.topic;
  const admin = deps.kafka.admin();
  await admin.connect();
  let starts: Map<number, number>;
  let lows: Map<number, number>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    lows = new Map(offsets.map((o) => [o.partition, Number(o.low)]));
    starts = fromTimeMs > 0
      ? new Map(
        (await admin.fetchTopicOffsetsByTimestamp(topic, fromTimeMs)).map((
          o,
        ) => [o.partition, Number(o.offset)]),
      )
      : lows;
  } finally {
    await admin.disconnect();
  }
  const reading = new Map<number, {
    end: number;
    start: number;
    readFrom: number;
    clock: ClockState;
    clockIncludes: number;
    history: PartitionHistory;
  }>();
  for (const w of wanted) {
    const start = starts.get(w.p.partition) ?? 0;
    const history: PartitionHistory = { events: new Map(), clockAtEnd: w.p.clock };
    out.set(w.p.partition, history);
    if (start > w.end) continue;
    const checkpoint = await deps.consumer.clockCheckpointAtOrBefore(topic, w.p.partition, start);
    reading.set(w.p.partition, {
      end: w.end,
      start,
      readFrom: checkpoint ? Math.min(start, checkpoint.offset + 1) : lows.get(w.p.partition) ?? 0,
      clock: checkpoint?.clock ?? emptyClockState(),
      clockIncludes: checkpoint?.offset ?? -1,
      history,
    });
  }
  if (reading.size === 0) return out;

  const schema = kind === "instrument" ? NormalizedTick : NormalizedCurvePoint;
  const keyOf = (v: unknown) =>
    kind === "instrument"
      ? (v as NormalizedTick).instrument_id
      : (v as NormalizedCurvePoint).curve_id;
  const consumer = deps.kafka.consumer({
    groupId: `${deps.config.DATA_PROC_GROUP_ID}.replay.${crypto.randomUUID()}`,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  try {
    let resolveDone: () => void = () => {};
    let rejectDone: (err: unknown) => void = () => {};
    const done = new Promise<void>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    const joined = new Promise<void>((res) => consumer.on(consumer.events.GROUP_JOIN, () => res()));
    await consumer.subscribe({ topic, fromBeginning: true });
    const remaining = new Set(reading.keys());
    await consumer.run({
      autoCommit: false,
      // deno-lint-ignore require-await
      eachBatch: async ({ batch, isRunning }) => {
        const r = reading.get(batch.partition);
        if (r === undefined || !remaining.has(batch.partition) || !isRunning()) return;
        for (const m of batch.messages as KafkaMessage[]) {
          const offset = Number(m.offset);
          if (offset > r.end) break;
          if (offset < r.readFrom) continue; // fetched before the seek took effect
          if (isControlRecord(m.headers)) {
            if (offset <= r.clockIncludes) continue;
            const mark = decodeJson(WatermarkRecord, m.value);
            if (mark.ok) applyWatermark(r.clock, mark.value);
            continue;
          }
          if (offset < r.start) continue; // read only for the clock
          const decoded = decodeJson(schema, m.value);
          if (!decoded.ok) continue;
          const key = keyOf(decoded.value);
          if (!match(key)) continue;
          const list = r.history.events.get(key) ?? [];
          list.push({
            offset,
            appendTimeMs: Number(m.timestamp),
            clock: currentClock(r.clock),
            value: decoded.value,
          });
          r.history.events.set(key, list);
        }
        if (Number(batch.lastOffset()) >= r.end) {
          r.history.clockAtEnd = currentClock(r.clock);
          remaining.delete(batch.partition);
          consumer.pause([{ topic, partitions: [batch.partition] }]);
          if (remaining.size === 0) resolveDone();
        }
      },
    }).catch(rejectDone);
    await joined;
    // `lows` has every partition of the topic.
    for (const partition of lows.keys()) {
      const r = reading.get(partition);
      if (r) consumer.seek({ topic, partition, offset: String(r.readFrom) });
      else consumer.pause([{ topic, partitions: [partition] }]);
    }
    const timeout = setTimeout(() => rejectDone(new Error("replay read timed out")), 300_000);
    try {
      await done;
    } finally {
      clearTimeout(timeout);
    }
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/** Rebuilds each key from its events, with versions above everything stored for it. */
async function rebuild(
  deps: ReplayDeps,
  p: AnyPartition,
  { events, clockAtEnd }: PartitionHistory,
  spec: ReplaySpec,
): Promise<Map<string, KeyActor<unknown>>> {
  const keys = [...events.keys()];
  const stored = await storedMaxVersions(deps, spec.kind, keys);
  const rebuilt = new Map<string, KeyActor<unknown>>();
  for (const key of keys) {
    const base = Math.max(await p.maxVersion(key), stored.get(key) ?? 0) + 1;
    const actor = p.detachedActor(key, base) as KeyActor<unknown>;
    for (const e of events.get(key)!) actor.enqueue(e);
    actor.drain(Date.now());
    actor.advance(clockAtEnd);
    rebuilt.set(key, actor);
  }
  return rebuilt;
}

function projectionKeys(config: Config, kind: ActorKind, key: string): string[] {
  return redisKeys(config.DATA_PROC_REDIS_PREFIX, config.DATA_PROC_GROUP_ID)
    .projectionsOf(kind, key, config.DATA_PROC_BAR_WINDOWS.map((w) => w.name));
}

/** The highest version stored for each key in Redis projections and ClickHouse gold rows. */
async function storedMaxVersions(
  deps: ReplayDeps,
  kind: ActorKind,
  keys: string[],
): Promise<Map<string, number>> {
  const max = new Map<string, number>();
  if (keys.length === 0) return max;
  const bump = (key: string, v: number) => max.set(key, Math.max(max.get(key) ?? 0, v));
  const pairs = keys.flatMap((k) => projectionKeys(deps.config, kind, k).map((rk) => [k, rk]));
  const values = await deps.redis.mget(pairs.map(([, rk]) => rk!));
  values.forEach((v, i) => {
    if (v === null) return;
    try {
      const version = Number(JSON.parse(v).version);
      if (Number.isFinite(version)) bump(pairs[i]![0]!, version);
    } catch {
      // not JSON: replaced by the rebuild anyway
    }
  });
  const gold = sqlIdentifier(deps.config.DATA_PROC_CLICKHOUSE_GOLD_DB);
  const table = kind === "instrument" ? "bars" : "curves";
  const idColumn = kind === "instrument" ? "instrument_id" : "curve_id";
  const rows = await queryRows<{ id: string; v: string }>(
    deps.clickhouse,
    `SELECT ${idColumn} AS id, max(version) AS v FROM ${gold}.${table}
     WHERE ${idColumn} IN (${keys.map(sqlString).join(", ")}) GROUP BY ${idColumn}`,
  );
  for (const row of rows) bump(row.id, Number(row.v));
  return max;
}

/** Removes the keys' stored projections and gold rows that the rebuild writes again. */
async function clearStored(deps: ReplayDeps, spec: ReplaySpec, keys: string[]): Promise<void> {
  if (keys.length === 0) return;
  await deps.redis.del(...keys.flatMap((k) => projectionKeys(deps.config, spec.kind, k)));
  const gold = sqlIdentifier(deps.config.DATA_PROC_CLICKHOUSE_GOLD_DB);
  const list = keys.map(sqlString).join(", ");
  if (spec.kind === "instrument") {
    const largest = Math.max(...deps.config.DATA_PROC_BAR_WINDOWS.map((w) => w.ms));
    const from = spec.fromTimeMs > 0 ? Math.ceil(spec.fromTimeMs / largest) * largest : 0;
    await deps.clickhouse.command({
      query: `ALTER TABLE ${gold}.bars DELETE WHERE instrument_id IN (${list}) AND start_ms >= ${
        sqlNumber(from)
      }`,
    });
  } else {
    await deps.clickhouse.command({
      query: `ALTER TABLE ${gold}.curves DELETE WHERE curve_id IN (${list}) AND event_time_ms >= ${
        sqlNumber(Math.max(0, spec.fromTimeMs))
      }`,
    });
  }
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

/** Dry run: how the rebuilt results differ from Redis projections and gold rows. */
async function differences(
  deps: ReplayDeps,
  kind: ActorKind,
  outputsByKey: Map<string, ActorOutputs>,
): Promise<ReplayDifference[]> {
  const out: ReplayDifference[] = [];
  const prefix = deps.config.DATA_PROC_REDIS_PREFIX;
  const gold = sqlIdentifier(deps.config.DATA_PROC_CLICKHOUSE_GOLD_DB);
  for (const [key, outputs] of outputsByKey) {
    const rebuiltProjections = new Map(
      outputs.projections.map((p) => [p.key, JSON.parse(p.value)]),
    );
    const keys = projectionKeys(deps.config, kind, key).map((k) => k.slice(prefix.length));
    const stored = await deps.redis.mget(keys.map((k) => prefix + k));
    keys.forEach((k, i) => {
      const rebuilt = rebuiltProjections.get(k) ?? null;
      const current = stored[i] ? JSON.parse(stored[i]!) : null;
      if (rebuilt === null && current === null) return;
      compareObjects(key, k, current, rebuilt, out);
    });
    if (kind === "instrument") {
      const rows = await queryRows<Record<string, unknown>>(
        deps.clickhouse,
        `SELECT resolution, start_ms, open, high, low, close, volume, vwap, count
         FROM ${gold}.bars FINAL WHERE instrument_id = ${sqlString(key)}`,
      );
      const storedRows = new Map(rows.map((r) => [`${r.resolution}|${r.start_ms}`, r]));
      const rebuiltRows = new Map(outputs.barRows.map((r) => [`${r.resolution}|${r.start_ms}`, r]));
      for (const id of new Set([...storedRows.keys(), ...rebuiltRows.keys()])) {
        const s = storedRows.get(id);
        const r = rebuiltRows.get(id);
        const norm = (row: Record<string, unknown> | undefined) =>
          row
            ? {
              open: Number(row.open),
              high: Number(row.high),
              low: Number(row.low),
              close: Number(row.close),
              volume: Number(row.volume),
              vwap: Number(row.vwap),
              count: Number(row.count),
            }
            : null;
        compareObjects(key, `gold.bars ${id}`, norm(s), norm(r), out);
      }
    } else {
      const rows = await queryRows<Record<string, unknown>>(
        deps.clickhouse,
        `SELECT toString(as_of) AS as_of, tenor, price FROM ${gold}.curves FINAL
         WHERE curve_id = ${sqlString(key)}`,
      );
      const storedRows = new Map(rows.map((r) => [`${r.as_of}|${r.tenor}`, r]));
      const rebuiltRows = new Map(outputs.curveRows.map((r) => [`${r.as_of}|${r.tenor}`, r]));
      for (const id of new Set([...storedRows.keys(), ...rebuiltRows.keys()])) {
        const s = storedRows.get(id);
        const r = rebuiltRows.get(id);
        compareObjects(
          key,
          `gold.curves ${id}`,
          s ? { price: Number(s.price) } : null,
          r ? { price: Number(r.price) } : null,
          out,
        );
      }
    }
  }
  return out;
}
