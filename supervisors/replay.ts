/**
 * Replay of a key range on this node: for every owned partition of the kind, hold back the
 * live events of the matching keys (flushes then store and commit the position where the
 * hold began, so a crash fetches the held events again), rebuild those keys from the whole
 * retained history of the partition up to the last offset applied live, then either report
 * how the rebuilt state differs from what is stored (dry run) or swap the rebuilt actors in,
 * with versions above everything stored, and flush. Held live events are applied after the
 * swap, so none is lost or counted twice; other keys never stop.
 *
 * Stored results are replaced, never deleted first: the rebuilt rows win by version, and
 * what the rebuild no longer produces is deleted only once the new state is stored.
 * `fromTimeMs` limits which bars are written again (those starting at or after the start of
 * the largest window that holds it); the state itself is always rebuilt from the start of the
 * log, so every bar, latest price, curve and the dedup memory equal a full rebuild.
 */
import type { Kafka, KafkaMessage } from "kafkajs";
import type { ActorOutputs, KeyedEvent } from "../actors/actor_kinds.ts";
import { type ActorKindDefinition, kindSettings, storedShape } from "../actors/kinds/kind.ts";
import { kindOf } from "../actors/kinds/registry.ts";
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
import type { Logger } from "../observability/logger.ts";
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
import type { PartitionSupervisor } from "./partition_supervisor.ts";
import { sleep, yieldToLoop } from "../timing/sleep.ts";

export interface ReplaySpec {
  kind: string;
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

export interface ReplayProgress {
  /** Log records read so far, of the total between each partition's start and its end. */
  recordsRead: number;
  recordsTotal: number;
  events: number;
  keys: number;
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

/** Reading stops with an error when no record arrived for this long. */
const READ_STALL_MS = 120_000;

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

/** The key range a spec covers as [from, to] (to undefined: unbounded), for overlap tests. */
export function keyRange(spec: Pick<ReplaySpec, "fromKey" | "toKey" | "prefix">) {
  if (spec.prefix !== undefined) return { from: spec.prefix, to: `${spec.prefix}\uffff` };
  return { from: spec.fromKey ?? "", to: spec.toKey };
}

/** Two specs of the same kind whose key ranges share a key. */
export function overlaps(a: ReplaySpec, b: ReplaySpec): boolean {
  if (a.kind !== b.kind) return false;
  const x = keyRange(a);
  const y = keyRange(b);
  return (y.to === undefined || x.from <= y.to) && (x.to === undefined || y.from <= x.to);
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

/** One partition's rebuilt keys, with their versions' base and their writes so far. */
interface PartitionRebuild {
  actors: Map<string, KeyActor<unknown>>;
  bases: Map<string, number>;
  outputs: Map<string, OutputsByIdentity>;
  clockAtEnd: EventClock;
}

export async function replayOnNode(deps: ReplayDeps, spec: ReplaySpec): Promise<ReplayResult> {
  const match = keyMatcher(spec);
  const parts = deps.consumer.partitions.filter((p) => p.kind === spec.kind && p.alive);
  const missing = (deps.partitions ?? []).filter((n) => !parts.some((p) => p.partition === n));
  if (missing.length > 0) throw new PartitionsMovedError(spec.kind, missing);
  deps.onHeld?.(parts.map((p) => p.partition));
  const held: AnyPartition[] = [];
  const ends: number[] = [];
  const releaseAll = (rebuilt?: Map<AnyPartition, PartitionRebuild>) =>
    Promise.all(held.map((p) => p.release(rebuilt?.get(p)?.actors ?? null)));
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
  const from = replacedFrom(spec, deps.config);
  let rebuilt: Map<AnyPartition, PartitionRebuild>;
  const bases = new Map<string, number>();
  try {
    rebuilt = await rebuildFromLog(deps, parts, ends, spec, match, result);
    const outputsByKey = new Map<string, ActorOutputs>();
    for (const [p, r] of rebuilt) {
      result.partitions.push(p.partition);
      for (const [key, actor] of r.actors) {
        actor.advance(r.clockAtEnd);
        const acc = r.outputs.get(key)!;
        acc.add(actor.collect());
        const out = filterBefore(acc.outputs(), from, kind.gold.timeColumn);
        outputsByKey.set(key, out);
        bases.set(key, r.bases.get(key)!);
        if (!spec.dryRun) actor.carry(out);
      }
    }
    result.keys = [...outputsByKey.keys()].sort();
    if (spec.dryRun) result.differences = await differences(deps, kind, outputsByKey, from);
    deps.signal?.throwIfAborted();
  } catch (err) {
    await releaseAll();
    throw err;
  }
  await releaseAll(spec.dryRun ? undefined : rebuilt);
  if (spec.dryRun) {
    for (const r of rebuilt.values()) for (const actor of r.actors.values()) actor.stop();
    return result;
  }
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

/** Gold rows at or after this time are written again (0: all); the kind decides its cut. */
function replacedFrom(spec: ReplaySpec, config: Config): number {
  return kindOf(spec.kind).replacedFrom(spec.fromTimeMs, kindSettings(config));
}

/**
 * Keeps the gold rows (and final-bar messages) a replay from a time writes again: those
 * whose time, in the kind's gold time column, is at or after `from`. Projections and what
 * carries no such time are always rewritten.
 */
function filterBefore(out: ActorOutputs, from: number, timeColumn: string): ActorOutputs {
  if (from <= 0) return out;
  const keep = (row: Record<string, unknown>) => {
    const at = row[timeColumn];
    return typeof at !== "number" || at >= from;
  };
  return {
    projections: out.projections,
    barRows: out.barRows.filter(keep),
    curveRows: out.curveRows.filter(keep),
    messages: out.messages.filter((m) => keep(JSON.parse(m.value))),
  };
}

/**
 * A rebuilt key's writes, the newest per identity (one bar, one curve point, one projection,
 * one final-bar message): collecting after every fetched batch keeps the machine's change
 * list short (so the rebuild stays linear in the history) without writing a bar twice.
 */
class OutputsByIdentity {
  readonly #projections = new Map<string, ActorOutputs["projections"][number]>();
  readonly #barRows = new Map<string, Record<string, unknown>>();
  readonly #curveRows = new Map<string, Record<string, unknown>>();
  readonly #messages = new Map<string, ActorOutputs["messages"][number]>();

  add(out: ActorOutputs): void {
    for (const p of out.projections) this.#projections.set(p.key, p);
    for (const r of out.barRows) this.#barRows.set(`${r.resolution}|${r.start_ms}`, r);
    for (const r of out.curveRows) this.#curveRows.set(`${r.as_of}|${r.tenor}`, r);
    for (const m of out.messages) {
      const id = m.topic === "bars"
        ? (({ resolution, start_ms }) => `bars|${resolution}|${start_ms}`)(JSON.parse(m.value))
        : m.topic;
      // Re-inserted so the messages keep the order of their last change.
      this.#messages.delete(id);
      this.#messages.set(id, m);
    }
  }

  /**
   * Takes the final bars (rows and their messages): they are written as the rebuild goes. A
   * later correction of one adds it again, with a higher version, to be written again.
   */
  takeSettled(): { barRows: Record<string, unknown>[]; messages: ActorOutputs["messages"] } {
    const barRows: Record<string, unknown>[] = [];
    const messages: ActorOutputs["messages"] = [];
    for (const [id, row] of this.#barRows) {
      if (row.final !== 1) continue;
      barRows.push(row);
      this.#barRows.delete(id);
      const message = this.#messages.get(`bars|${id}`);
      if (message) {
        messages.push(message);
        this.#messages.delete(`bars|${id}`);
      }
    }
    return { barRows, messages };
  }

  outputs(): ActorOutputs {
    return {
      projections: [...this.#projections.values()],
      barRows: [...this.#barRows.values()],
      curveRows: [...this.#curveRows.values()],
      messages: [...this.#messages.values()],
    };
  }
}

/** Synchronous rebuild work between two yields to the event loop. */
const SLICE_MS = 5;

/**
 * A replay works at most about this long (wall time, fetch decode and writes included) before
 * it rests. Yielding every slice is not enough on one thread: the live path needs several
 * loop turns per event (socket read, fetch decode, batch, apply) and waits a replay slice at
 * each, and the replay's garbage costs GC pauses. Profiled at 100 keys x 10k bars, a replay
 * at full speed kept the thread 90% busy (GC 10 s of 47 s, against 0.8 s of 30 s without it).
 * Resting leaves the live path whole stretches of the loop.
 */
const WORK_MS = 20;
/**
 * Rest per ms worked: while live batches came during the last work stretch, the replay takes
 * about half of the thread (live keys' p99 1.6-2.2x at 5k events/s, bench --scenario replay;
 * a third of it took 1.5x longer); on a quiet node, four fifths.
 */
const REST_PER_MS_LIVE = 1;
const REST_PER_MS_QUIET = 0.25;

/**
 * Gives the loop back between fetched batches: a turn of the loop while the replay has worked
 * less than WORK_MS since its last rest, else a rest in proportion to the work (longer while
 * live traffic is applied). It rests only between batches, when a batch's records, events and
 * written rows are garbage already: resting inside one would keep them alive across
 * young-generation GCs and promote them.
 */
class DutyCycle {
  #workingSince = performance.now();
  #liveSeen: number;

  constructor(readonly liveBatches: () => number, readonly signal?: AbortSignal) {
    this.#liveSeen = liveBatches();
  }

  async pause(): Promise<void> {
    const worked = performance.now() - this.#workingSince;
    if (worked < WORK_MS) return await yieldToLoop();
    const live = this.liveBatches();
    const restPerMs = live !== this.#liveSeen ? REST_PER_MS_LIVE : REST_PER_MS_QUIET;
    this.#liveSeen = live;
    await sleep(worked * restPerMs, this.signal);
    this.#workingSince = performance.now();
  }

  /** Rests (or, with a rate cap, waits) this long: the next work stretch starts after it. */
  async rest(ms: number): Promise<void> {
    await sleep(ms, this.signal);
    this.#workingSince = performance.now();
  }
}

/** Final bars written per chunk while a replay rebuilds (bounded memory, small swap flush). */
const SETTLED_CHUNK = 1000;

/**
 * Writes the bars a rebuild has made final to ClickHouse and Kafka as it goes, instead of
 * carrying a whole history into the flush that swaps the actors in (a week of 1m bars for 100
 * keys is a million rows: one flush of them stalls the node past its group session). They
 * carry versions above everything stored, so they win, and writing one again is harmless.
 */
class SettledWriter {
  #rows: Record<string, unknown>[] = [];
  #messages: ActorOutputs["messages"] = [];

  constructor(
    readonly write: (outputs: ActorOutputs) => Promise<void>,
    readonly from: number,
    readonly timeColumn: string,
  ) {}

  add(settled: ReturnType<OutputsByIdentity["takeSettled"]>): void {
    for (const r of settled.barRows) this.#rows.push(r);
    for (const m of settled.messages) this.#messages.push(m);
  }

  /** Writes what is pending once a chunk is full (or now, with `all`). */
  async flush(all = false): Promise<void> {
    if (this.#rows.length === 0 || (!all && this.#rows.length < SETTLED_CHUNK)) return;
    const outputs = filterBefore(
      { projections: [], barRows: this.#rows, curveRows: [], messages: this.#messages },
      this.from,
      this.timeColumn,
    );
    this.#rows = [];
    this.#messages = [];
    await this.write(outputs);
  }
}

/** A partition being read: where it starts and ends, its clock, and its rebuilt keys. */
interface Reading {
  p: AnyPartition;
  from: number;
  end: number;
  clock: ClockState;
  clockIncludes: number;
  rebuild: PartitionRebuild;
}

/**
 * Reads each held partition from its first retained record to the offset it had applied
 * when the hold began, feeding the matching keys' events, each with the partition's clock at
 * its offset as the live run judged it, into detached actors batch by batch.
 */
async function rebuildFromLog(
  deps: ReplayDeps,
  parts: AnyPartition[],
  ends: number[],
  spec: ReplaySpec,
  match: (key: string) => boolean,
  result: ReplayResult,
): Promise<Map<AnyPartition, PartitionRebuild>> {
  const out = new Map<AnyPartition, PartitionRebuild>();
  for (const p of parts) {
    out.set(p, { actors: new Map(), bases: new Map(), outputs: new Map(), clockAtEnd: p.clock });
  }
  if (parts.length === 0) return out;
  const topic = parts[0]!.topic;
  const admin = deps.kafka.admin();
  await admin.connect();
  let lows: Map<number, number>;
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    lows = new Map(offsets.map((o) => [o.partition, Number(o.low)]));
  } finally {
    await admin.disconnect();
  }
  const reading = new Map<number, Reading>();
  for (const [i, p] of parts.entries()) {
    const from = lows.get(p.partition) ?? 0;
    const end = ends[i]!;
    if (end < from) continue;
    // Records below the log start are gone; a checkpoint tells the clock they had built.
    const checkpoint = from > 0
      ? await deps.consumer.clockCheckpointAtOrBefore(topic, p.partition, from - 1)
      : undefined;
    reading.set(p.partition, {
      p,
      from,
      end,
      clock: checkpoint?.clock ?? emptyClockState(),
      clockIncludes: checkpoint?.offset ?? -1,
      rebuild: out.get(p)!,
    });
  }
  if (reading.size === 0) return out;
  const progress: ReplayProgress = {
    recordsRead: 0,
    recordsTotal: [...reading.values()].reduce((n, r) => n + r.end - r.from + 1, 0),
    events: 0,
    keys: 0,
  };
  deps.onProgress?.({ ...progress });

  const { schema, keyOf } = kindOf(spec.kind);
  const consumer = deps.kafka.consumer({
    groupId: `${deps.config.DATA_PROC_GROUP_ID}.replay.${crypto.randomUUID()}`,
    maxWaitTimeInMs: 100,
    // Small fetches: kafkajs decodes a whole fetch response in one go, and the partitions'
    // batches of one response wait for each other (long enough to be promoted to the old
    // generation, whose collection pauses the live path).
    maxBytesPerPartition: 64 * 1024,
    maxBytes: 256 * 1024,
  });
  const started = Date.now();
  const maxRate = deps.config.DATA_PROC_REPLAY_MAX_RECORDS_PER_S;
  const duty = new DutyCycle(() => deps.consumer.batchesApplied, deps.signal);
  // A dry run writes nothing; it compares every rebuilt row at the end.
  const kind = kindOf(spec.kind);
  const settled = spec.dryRun ? null : new SettledWriter(
    (outputs) => deps.consumer.writeOutputs(outputs),
    kind.replacedFrom(spec.fromTimeMs, kindSettings(deps.config)),
    kind.gold.timeColumn,
  );
  await consumer.connect();
  try {
    let resolveDone: () => void = () => {};
    let rejectDone: (err: unknown) => void = () => {};
    const done = new Promise<void>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    let lastRecordAt = Date.now();
    const joined = new Promise<void>((res) => consumer.on(consumer.events.GROUP_JOIN, () => res()));
    await consumer.subscribe({ topic, fromBeginning: true });
    const remaining = new Set(reading.keys());
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, isRunning }) => {
        const r = reading.get(batch.partition);
        if (r === undefined || !remaining.has(batch.partition) || !isRunning()) return;
        if (deps.signal?.aborted) return rejectDone(deps.signal.reason);
        lastRecordAt = Date.now();
        const byKey = new Map<string, KeyedEvent<unknown>[]>();
        let read = 0;
        for (const m of batch.messages as KafkaMessage[]) {
          const offset = Number(m.offset);
          if (offset > r.end) break;
          if (offset < r.from) continue; // fetched before the seek took effect
          read++;
          if (isControlRecord(m.headers)) {
            if (offset <= r.clockIncludes) continue;
            const mark = decodeJson(WatermarkRecord, m.value);
            if (mark.ok) applyWatermark(r.clock, mark.value);
            continue;
          }
          const decoded = decodeJson(schema, m.value);
          if (!decoded.ok) continue;
          const key = keyOf(decoded.value);
          if (!match(key)) continue;
          const event = {
            offset,
            appendTimeMs: Number(m.timestamp),
            clock: currentClock(r.clock),
            value: decoded.value,
          };
          const list = byKey.get(key);
          if (list) list.push(event);
          else byKey.set(key, [event]);
        }
        try {
          await applyBatch(deps, spec.kind, r, byKey);
          if (settled) {
            for (const key of byKey.keys()) settled.add(r.rebuild.outputs.get(key)!.takeSettled());
            await settled.flush();
          }
        } catch (err) {
          return rejectDone(err);
        }
        progress.recordsRead += read;
        for (const events of byKey.values()) progress.events += events.length;
        result.events = progress.events;
        if (Number(batch.lastOffset()) >= r.end) {
          r.rebuild.clockAtEnd = currentClock(r.clock);
          remaining.delete(batch.partition);
          consumer.pause([{ topic, partitions: [batch.partition] }]);
          if (remaining.size === 0) resolveDone();
        }
        progress.keys = [...reading.values()].reduce((n, x) => n + x.rebuild.actors.size, 0);
        deps.onProgress?.({ ...progress });
        const ahead = maxRate > 0
          ? (1000 * progress.recordsRead) / maxRate - (Date.now() - started)
          : 0;
        if (ahead > 0) await duty.rest(ahead);
        // Fetched batches ready back to back chain as microtasks: let I/O and timers run.
        else await duty.pause();
      },
    }).catch(rejectDone);
    await joined;
    for (const partition of lows.keys()) {
      const r = reading.get(partition);
      if (r) consumer.seek({ topic, partition, offset: String(r.from) });
      else consumer.pause([{ topic, partitions: [partition] }]);
    }
    const stalled = setInterval(() => {
      if (Date.now() - lastRecordAt > READ_STALL_MS) {
        rejectDone(new Error(`replay read no record for ${READ_STALL_MS / 1000} s`));
      }
    }, 1000);
    const onAbort = () => rejectDone(deps.signal?.reason);
    deps.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await done;
      await settled?.flush(true);
    } finally {
      clearInterval(stalled);
      deps.signal?.removeEventListener("abort", onAbort);
    }
  } finally {
    await consumer.disconnect();
  }
  return out;
}

/**
 * Applies one fetched batch's events to the rebuilt actors (creating those seen for the
 * first time, with versions above everything stored or issued for them), then takes their
 * writes, so each actor's change list stays short however long the history.
 */
async function applyBatch(
  deps: ReplayDeps,
  kind: string,
  r: Reading,
  byKey: Map<string, KeyedEvent<unknown>[]>,
): Promise<void> {
  const { actors, bases, outputs } = r.rebuild;
  const fresh = [...byKey.keys()].filter((k) => !actors.has(k));
  if (fresh.length > 0) {
    const stored = await storedMaxVersions(
      projectionStore(deps),
      storedShapeOf(kindOf(kind), deps),
      fresh,
    );
    for (const key of fresh) {
      const base = Math.max(await r.p.maxVersion(key), stored.get(key) ?? 0) + 1;
      bases.set(key, base);
      actors.set(key, r.p.detachedActor(key, base) as KeyActor<unknown>);
      outputs.set(key, new OutputsByIdentity());
    }
  }
  const now = Date.now();
  let sliceStarted = performance.now();
  for (const [key, events] of byKey) {
    const actor = actors.get(key)!;
    for (const e of events) actor.enqueue(e);
    actor.drain(now); // rejections were sent to the DLQ by the live run
    outputs.get(key)!.add(actor.collect());
    // Live partitions and HTTP get the loop back every few milliseconds.
    if (performance.now() - sliceStarted > SLICE_MS) {
      await yieldToLoop();
      sliceStarted = performance.now();
    }
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
