/**
 * The consumer supervisor of the actor stage: joins the consumer group on the normalized
 * topics, runs one PartitionSupervisor per owned partition, and flushes them on a schedule.
 *
 * Effectively once: a flush (supervisors/flush_path.ts) writes Kafka outputs and ClickHouse
 * rows (idempotent by deterministic ids and versions), then projections and snapshots in one
 * fenced Redis call, and only then commits the partition's offset. A partition's epoch (INCR
 * on assignment) fences out every earlier owner: a fenced flush writes nothing to Redis and
 * commits nothing. This class schedules flushes and handles what they report: a fenced
 * partition is dropped (and claimed again while Kafka still assigns it here), a failed flush
 * pauses consumption and rebuilds its partitions from their stored state.
 */
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from "kafkajs";
import type { Config } from "../config/config.ts";
import type { ActorKind, KindAdapter } from "../actors/actor_kinds.ts";
import { type ActorKindDefinition, kindSettings } from "../actors/kinds/kind.ts";
import { KINDS } from "../actors/kinds/registry.ts";
import type { PersistedPartition } from "../messages/partition_state.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { withSpan } from "../observability/tracing.ts";
import type { ActorStore } from "../stores/actor_store.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import { createProducer, topicNames } from "../stores/kafka.ts";
import { type FlushSinks, runFlush } from "./flush_path.ts";
import { RefreshSchedule, schedulePhase } from "./flush_schedule.ts";
import {
  ActorCrashEscalation,
  PartitionEscalation,
  type PartitionFlushPlan,
  PartitionSupervisor,
  type RecordKeys,
  recordKeysOf,
} from "./partition_supervisor.ts";
import { jitteredBackoffMs } from "../timing/backoff.ts";
import { sleep } from "../timing/sleep.ts";
import { RestartIntensity } from "./restart_policy.ts";

export interface ActorConsumerDeps {
  config: Config;
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  store: ActorStore;
  logger: Logger;
  now?: () => number;
  /** Called when the consumer cannot continue (restart intensity exceeded). */
  onFatal?: (err: unknown) => void;
  /** Told how many events each key received in a batch (hot-key tracking). */
  onKeyEvents?: (kind: string, key: string, count: number) => void;
  /** The actor kinds to run (default: every kind of actors/kinds/registry.ts). */
  kinds?: readonly ActorKindDefinition[];
  /** The highest version the sinks hold per key (see PartitionOptions.versionFloor). */
  versionFloor?: (kind: string, keys: string[]) => Promise<Map<string, number>>;
}

export interface PartitionView {
  topic: string;
  partition: number;
  kind: ActorKind;
  epoch: number;
  processed_offset: number;
  live_actors: number;
  lag: number | null;
  /** Event-time clock (CONTRACT.md "Event time") and each source's latest watermark. */
  clock_ms: number | null;
  quiet_ms: number | null;
  watermark_lag_ms: number | null;
  pending_close_keys: number;
  sources: {
    source_topic: string;
    source_partition: number;
    watermark_ms: number | null;
    idle: boolean;
    wall_ms: number;
  }[];
}

// deno-lint-ignore no-explicit-any
type AnyPartition = PartitionSupervisor<any>;

/** Pause before a fenced partition that is still assigned here is claimed again. */
const RECLAIM_AFTER_MS = 1000;

export class ActorConsumer {
  readonly #d: ActorConsumerDeps;
  readonly #now: () => number;
  readonly #topics;
  readonly #consumer: Consumer;
  readonly #producer: Producer;
  readonly #partitions = new Map<string, AnyPartition>();
  readonly #pending = new Map<string, Promise<AnyPartition | undefined>>();
  readonly #claimTokens = new Map<string, object>();
  readonly #highWatermarks = new Map<string, number>();
  readonly #refresh: RefreshSchedule<AnyPartition>;
  /** Escalations (actors crashing again and again) per partition: the node gives up past it. */
  readonly #escalations = new Map<string, RestartIntensity>();
  #batchesApplied = 0;
  /** Keys that crashed, per partition: their actors keep the events a retry needs. */
  readonly #watchedKeys = new Map<string, Set<string>>();
  /** Consecutive failed flushes: the flush loop backs off and consumption pauses meanwhile. */
  #flushFailures = 0;
  #lastFlushError: string | null = null;
  #paused = false;
  readonly #abort = new AbortController();
  #assignment: { topic: string; partition: number }[] = [];
  #joined = false;
  #crashed = false;
  #flushLoop: Promise<void> = Promise.resolve();
  #flushing: Promise<void> = Promise.resolve();
  /** Live actors the batches being applied may add (see #admitUnderCap). */
  #admitting = 0;
  /** Batches waiting for one being applied to end (see #admitUnderCap). */
  readonly #batchDone: (() => void)[] = [];
  /** The flush that batches past the live-actor cap wait for: one, however many wait. */
  #capFlush: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #flushRequested = false;
  #snapshotRequested = false;
  /** Each kind by the topic its events come from, with the adapter of its machines. */
  readonly #kinds: Map<string, { kind: ActorKindDefinition; adapter: KindAdapter<unknown> }>;
  readonly #sinks: FlushSinks;

  constructor(deps: ActorConsumerDeps) {
    this.#d = deps;
    this.#now = deps.now ?? Date.now;
    this.#topics = topicNames(deps.config.DATA_PROC_TOPIC_PREFIX);
    this.#refresh = new RefreshSchedule(deps.config.DATA_PROC_PROJECTION_REFRESH_INTERVAL * 1000);
    const settings = kindSettings(deps.config);
    this.#kinds = new Map(
      (deps.kinds ?? KINDS).map((kind) => [
        kind.inputTopic(this.#topics),
        { kind, adapter: kind.adapter(settings) },
      ]),
    );
    this.#consumer = deps.kafka.consumer({
      groupId: `${deps.config.DATA_PROC_GROUP_ID}.actors`,
      sessionTimeout: 10_000,
      heartbeatInterval: 1000,
      rebalanceTimeout: 30_000,
      maxWaitTimeInMs: 100,
      maxBytesPerPartition: 2 * 1024 * 1024,
      retry: { retries: 10 },
    });
    this.#producer = createProducer(deps.kafka, {
      idempotent: false,
      maxInFlightRequests: 5,
    });
    this.#sinks = {
      producer: this.#producer,
      clickhouse: deps.clickhouse,
      store: deps.store,
      topics: this.#topics,
      goldDb: deps.config.DATA_PROC_CLICKHOUSE_GOLD_DB,
      commit: (offsets) => this.#consumer.commitOffsets(offsets),
    };
  }

  get ready(): boolean {
    return this.#joined && !this.#crashed;
  }

  get partitions(): AnyPartition[] {
    return [...this.#partitions.values()];
  }

  assignment(): { topic: string; partition: number }[] {
    return this.#assignment;
  }

  /** Finds the partition supervisor that holds (or would hold) a live key. */
  findLive(kind: ActorKind, key: string) {
    for (const p of this.#partitions.values()) {
      if (p.kind !== kind) continue;
      const actor = p.actor(key);
      if (actor) return { partition: p, actor };
    }
    return undefined;
  }

  partitionViews(): PartitionView[] {
    return this.partitions.map((p) => {
      const hw = this.#highWatermarks.get(`${p.topic}:${p.partition}`);
      return {
        topic: p.topic,
        partition: p.partition,
        kind: p.kind,
        epoch: p.epoch,
        processed_offset: p.processedOffset,
        live_actors: p.liveActors,
        lag: hw === undefined ? null : Math.max(0, hw - p.processedOffset - 1),
        ...clockFields(p, this.#now()),
      };
    });
  }

  async start(): Promise<void> {
    const { GROUP_JOIN, CRASH, REBALANCING } = this.#consumer.events;
    this.#consumer.on(GROUP_JOIN, (e) => this.#onAssigned(e.payload.memberAssignment));
    this.#consumer.on(REBALANCING, () => this.requestFlush());
    this.#consumer.on(CRASH, (e) => {
      this.#d.logger.error("actor consumer crashed", { error: e.payload.error });
      if (!e.payload.restart) {
        this.#crashed = true;
        this.#d.onFatal?.(e.payload.error);
      }
    });
    await this.#producer.connect();
    await this.#consumer.connect();
    await this.#consumer.subscribe({
      topics: [...this.#kinds.keys()],
      fromBeginning: true,
    });
    await this.#consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 4,
      eachBatch: (payload) => this.#eachBatch(payload),
    });
    this.#flushLoop = this.#runFlushLoop(this.#abort.signal);
  }

  /**
   * A new assignment (kafkajs emits it after every join): every partition gets a new epoch,
   * which fences out whoever held it before, and restarts from its committed offset with
   * actors revived lazily from snapshots. Actors of the previous generation are dropped
   * without flushing: their unflushed work is redone from the committed offset.
   */
  #onAssigned(assignment: Record<string, number[]>): void {
    metrics.rebalances.labels("actors").inc();
    const old = [...this.#partitions.values()];
    this.#partitions.clear();
    this.#pending.clear();
    this.#claimTokens.clear();
    for (const p of old) void p.stop();
    this.#assignment = Object.entries(assignment).flatMap(([topic, parts]) =>
      parts.map((partition) => ({ topic, partition }))
    );
    for (const { topic, partition } of this.#assignment) this.#claim(topic, partition);
    this.#joined = true;
    this.#d.logger.info("partitions assigned", { assignment });
  }

  /** Claims a partition's new epoch (retrying while Redis is unreachable). */
  #claim(topic: string, partition: number): Promise<AnyPartition | undefined> {
    const id = `${topic}:${partition}`;
    const token = {};
    this.#claimTokens.set(id, token);
    const current = () => this.#claimTokens.get(id) === token && !this.#abort.signal.aborted;
    const claim = (async () => {
      for (let attempt = 1; current(); attempt++) {
        try {
          const epoch = await this.#d.store.claim(topic, partition);
          // Read after the claim: the previous owner can no longer write it.
          const persisted = await this.#d.store.loadPartition(topic, partition);
          if (!current()) return undefined; // superseded by a newer assignment
          const p = this.#newPartition(topic, partition, epoch, persisted);
          this.#partitions.set(id, p);
          // Resume where the stored state ends, not at Kafka's committed offset: the two are
          // written one after the other, and Redis may have been restarted empty or rolled
          // back. No state at all: rebuild from the earliest record (an offset below the
          // log start resets to it, the consumer reading from the beginning).
          const resume = persisted ? persisted.offset + 1 : 0;
          this.#consumer.seek({ topic, partition, offset: String(resume) });
          return p;
        } catch (err) {
          this.#d.logger.warn("cannot claim partition; retrying", {
            topic,
            partition,
            attempt,
            err,
          });
          await sleep(jitteredBackoffMs(attempt, { baseMs: 200, capMs: 5000 }), this.#abort.signal);
        }
      }
      return undefined;
    })();
    this.#pending.set(id, claim);
    return claim;
  }

  #newPartition(
    topic: string,
    partition: number,
    epoch: number,
    persisted: PersistedPartition | undefined,
  ): AnyPartition {
    const watchedKeys = this.#watchedKeys.get(`${topic}:${partition}`);
    const common = {
      ...(watchedKeys ? { watchedKeys } : {}),
      onEscalation: (err: PartitionEscalation) => {
        this.#escalate(created, err).catch((e) =>
          this.#d.logger.error("partition restart failed", { topic, partition, err: e })
        );
      },
      topic,
      partition,
      epoch,
      ...(persisted ? { persisted } : {}),
      store: this.#d.store,
      historySize: this.#d.config.DATA_PROC_ACTOR_HISTORY,
      now: this.#now,
      lastSnapshotMs: this.#now() -
        this.#d.config.DATA_PROC_SNAPSHOT_INTERVAL_MS * schedulePhase(partition),
      logger: this.#d.logger.child("partition", { topic, partition }),
      ...(this.#d.onKeyEvents ? { onKeyEvents: this.#d.onKeyEvents } : {}),
      onWindowClosed: () => this.requestFlush(),
    };
    const { kind, adapter } = this.#kindOfTopic(topic);
    const versionFloor = this.#d.versionFloor;
    const created: AnyPartition = new PartitionSupervisor({
      ...common,
      ...(versionFloor ? { versionFloor: (keys: string[]) => versionFloor(kind.name, keys) } : {}),
      adapter,
      schema: kind.schema,
      ...(kind.fastCheck ? { fastCheck: kind.fastCheck } : {}),
      keyOf: kind.keyOf,
    });
    return created;
  }

  /** The kind whose events a topic carries, and the adapter of its machines. */
  #kindOfTopic(topic: string) {
    const entry = this.#kinds.get(topic);
    if (!entry) throw new Error(`no actor kind reads ${topic}`);
    return entry;
  }

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch } = payload;
    const id = `${batch.topic}:${batch.partition}`;
    const p = this.#partitions.get(id) ??
      await (this.#pending.get(id) ?? this.#claim(batch.topic, batch.partition));
    if (!p || !p.alive || payload.isStale() || !payload.isRunning()) return;
    this.#highWatermarks.set(id, Number(batch.highWatermark));
    const size = batch.messages.length;
    const adding = await this.#admitUnderCap(p, batch.messages);
    let escalation: PartitionEscalation | null = null;
    try {
      if (!p.alive || payload.isStale() || !payload.isRunning()) return;
      await withSpan("actors.batch", {
        "messaging.destination.name": batch.topic,
        "messaging.destination.partition.id": String(batch.partition),
        "messaging.batch.message_count": size,
      }, () => p.handle(batch.messages));
    } catch (err) {
      if (!(err instanceof PartitionEscalation)) throw err;
      escalation = err;
    } finally {
      this.#admitting -= adding;
      for (const wake of this.#batchDone.splice(0)) wake();
    }
    if (escalation) return await this.#escalate(p, escalation);
    this.#batchesApplied++;
    if (!p.alive) return;
    payload.resolveOffset(batch.lastOffset());
    metrics.lastEventTime.set(
      batch.topic,
      batch.partition,
      newestTimestampMs(batch.messages) / 1000,
    );
    if (this.#liveActors() > this.#d.config.DATA_PROC_MAX_LIVE_ACTORS) {
      this.requestFlush({ snapshot: true }); // passivation needs stored snapshots
    }
    this.#noteBacklog(p, batch.messages[0]);
    await payload.heartbeat();
  }

  /**
   * Lets a batch in once the live-actor cap has room for the actors it may add (its keys not
   * live), and returns how many it may add. Batches of several partitions are applied
   * concurrently, so a batch that would take the thread past the cap with those being
   * applied waits for them to end; one that would take it past the cap alone first has
   * snapshots stored and actors passivated to make room. So the thread keeps to its share of
   * the cap, and the node to the cap, unless one batch holds more new keys than the share
   * (then by less than that batch). A batch that adds no actor is never held. A failed flush
   * restarts its partitions itself.
   */
  async #admitUnderCap(p: AnyPartition, messages: readonly KafkaMessage[]): Promise<number> {
    const cap = this.#d.config.DATA_PROC_MAX_LIVE_ACTORS;
    // A flush that passivated nothing (an outage, or nothing left to passivate) must not
    // hold the batch forever.
    let flushStuck = false;
    // Decoded once, near the cap only: which are live changes while the batch waits.
    let batchKeys: RecordKeys | undefined;
    for (;;) {
      const live = this.#liveActors();
      // Far below the cap, every record may be a new key; near it, the keys are counted.
      const adding = live + this.#admitting + messages.length <= cap
        ? messages.length
        : p.newKeys(batchKeys ??= recordKeysOf(messages));
      const fits = adding === 0 || live + this.#admitting + adding <= cap;
      if (fits || (flushStuck && this.#admitting === 0)) {
        this.#admitting += adding; // in the same turn as the check
        return adding;
      }
      if (this.#admitting > 0) {
        await new Promise<void>((resolve) => this.#batchDone.push(resolve));
        continue;
      }
      this.#capFlush ??= this.flush({ snapshot: true, room: adding }).catch(() => {}).finally(
        () => {
          this.#capFlush = null;
        },
      );
      await this.#capFlush;
      flushStuck = this.#liveActors() >= live;
    }
  }

  /**
   * A partition a whole snapshot interval behind (a backlog: after downtime, a restart, an
   * outage) snapshots, and so commits, as soon as it has caught up instead of at its next
   * periodic snapshot: its committed lag is 0 once it has drained, and a crash then replays
   * none of the backlog. At live rates a partition is never that far behind, so the periodic
   * schedule (spread over the interval) stays as it is.
   */
  #noteBacklog(p: AnyPartition, first: { timestamp: string } | undefined): void {
    // The record's timestamp: when the normalizer produced it (CreateTime), a wall clock.
    const behindMs = first ? Date.now() - Number(first.timestamp) : 0;
    if (behindMs >= this.#d.config.DATA_PROC_SNAPSHOT_INTERVAL_MS) p.markBehind();
    if (this.#drainedBacklog(p)) this.requestFlush();
  }

  #drainedBacklog(p: AnyPartition): boolean {
    const highWatermark = this.#highWatermarks.get(`${p.topic}:${p.partition}`);
    return p.behind && highWatermark !== undefined && p.processedOffset + 1 >= highWatermark;
  }

  /** Restarts a partition that escalated (watching the key that crashed), or gives up. */
  async #escalate(p: AnyPartition, err: PartitionEscalation): Promise<void> {
    if (!this.#escalationFor(p).record(this.#now())) {
      this.#crashed = true;
      this.#d.onFatal?.(new Error(`partition restarts exceeded; last: ${String(err)}`));
      return;
    }
    if (err instanceof ActorCrashEscalation) {
      const id = `${p.topic}:${p.partition}`;
      const watched = this.#watchedKeys.get(id) ?? new Set<string>();
      this.#watchedKeys.set(id, watched.add(err.key));
    }
    await this.#restartPartition(p, err, this.#escalationFor(p).backoffMs());
  }

  /**
   * Partition-level restart: drop its actors and claim it again, which rebuilds it from its
   * stored state and snapshots and seeks to the offset they end at. Needs no broker call, so
   * it works in the middle of an outage.
   */
  async #restartPartition(p: AnyPartition, cause: unknown, backoffMs: number): Promise<void> {
    metrics.actorRestarts.labels("partition").inc();
    this.#d.logger.error("restarting partition", { topic: p.topic, partition: p.partition, cause });
    await p.stop();
    this.#forget(p);
    await sleep(backoffMs, this.#abort.signal);
    if (this.#isAssigned(p.topic, p.partition)) await this.#claim(p.topic, p.partition);
  }

  #escalationFor(p: AnyPartition): RestartIntensity {
    const id = `${p.topic}:${p.partition}`;
    let intensity = this.#escalations.get(id);
    if (!intensity) {
      intensity = new RestartIntensity({ maxRestarts: 5, windowMs: 300_000 });
      this.#escalations.set(id, intensity);
    }
    return intensity;
  }

  /** Removes this generation of a partition (never a newer one claimed meanwhile). */
  #forget(p: AnyPartition): void {
    const id = `${p.topic}:${p.partition}`;
    if (this.#partitions.get(id) === p) this.#partitions.delete(id);
  }

  #isAssigned(topic: string, partition: number): boolean {
    return !this.#abort.signal.aborted &&
      this.#assignment.some((a) => a.topic === topic && a.partition === partition);
  }

  /** Where a replay of `topic[partition]` from `offset` can start its clock. */
  clockCheckpointAtOrBefore(topic: string, partition: number, offset: number) {
    return this.#d.store.clockCheckpointAtOrBefore(topic, partition, offset);
  }

  /** The owned partition supervisor of a kind holding `partition`, if this node owns it. */
  ownedPartition(kind: string, partition: number): AnyPartition | undefined {
    const topic = [...this.#kinds].find(([, k]) => k.kind.name === kind)?.[0];
    if (topic === undefined) return undefined;
    const p = this.#partitions.get(`${topic}:${partition}`);
    return p?.alive ? p : undefined;
  }

  /**
   * Resets one key on this node (its partition must be owned here), versions continuing
   * above `storedVersion` (the highest the sinks hold), and flushes at once. The outcome says
   * whether the reset is durable: "moved" when the partition moved or restarted before its
   * flush stored the reset (the owner then holds the state from before it).
   */
  async reset(
    kind: ActorKind,
    key: string,
    partition: number,
    storedVersion: number,
  ): Promise<ResetOutcome> {
    const p = this.ownedPartition(kind, partition);
    if (!p) return { status: "moved" };
    if (p.holds(key)) return { status: "replaying" };
    const versionBase = await p.reset(key, storedVersion);
    if (versionBase === undefined) return { status: "unknown" };
    await this.flush();
    return p.alive ? { status: "reset", versionBase } : { status: "moved" };
  }

  /** Fetched batches applied so far (a replay rests longer while this moves: live traffic). */
  get batchesApplied(): number {
    return this.#batchesApplied;
  }

  /** Asks the flush loop to run now (a window closed, the live-actor cap was passed, ...). */
  requestFlush(options: { snapshot?: boolean } = {}): void {
    this.#flushRequested = true;
    if (options.snapshot) this.#snapshotRequested = true;
    this.#wake?.();
  }

  async #runFlushLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (!this.#flushRequested) {
        const live = this.partitions.filter((p) => p.alive);
        await this.#sleepUnlessWoken(this.#refresh.sleepMs(live, this.#now()), signal);
      }
      // Asked for (a window closed, the cap was passed): every partition; else those due.
      const which = this.#flushRequested ? "all" : "due";
      this.#flushRequested = false;
      if (signal.aborted) break;
      // Snapshots (and so offset commits) less often than projections: they cost most, and
      // a crash only replays the events since the last commit, idempotently.
      const snapshot = this.#snapshotRequested || "due";
      this.#snapshotRequested = false;
      if (this.#flushFailures > 0 && !(await this.#storesAnswer(signal))) continue;
      try {
        await this.flush({ snapshot, partitions: which });
      } catch (err) {
        this.#d.logger.error("flush failed; its partitions restart from their stored state", {
          err,
          failures: this.#flushFailures,
        });
      }
    }
  }

  /** Sleeps `ms`, or less when requestFlush or the abort wakes it. */
  async #sleepUnlessWoken(ms: number, signal: AbortSignal): Promise<void> {
    let onAbort = () => {};
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      signal.addEventListener("abort", onAbort, { once: true });
    });
    signal.removeEventListener("abort", onAbort);
    this.#wake = null;
  }

  /**
   * After a failed flush: waits a jittered, growing delay, then checks that Redis and
   * ClickHouse answer; only then is consumption resumed (it paused at the failure, so memory
   * stays bounded however long the outage lasts).
   */
  async #storesAnswer(signal: AbortSignal): Promise<boolean> {
    await sleep(jitteredBackoffMs(this.#flushFailures, { capMs: 15_000 }), signal);
    if (signal.aborted) return false;
    try {
      await this.#d.store.ping();
      const ch = await this.#d.clickhouse.ping();
      if (!ch.success) throw ch.error;
    } catch (err) {
      this.#flushFailures++;
      this.#lastFlushError = `stores not answering: ${(err as Error).message}`;
      return false;
    }
    this.#flushFailures = 0;
    this.#lastFlushError = null;
    this.#resume();
    return true;
  }

  /** Why flushes are failing, or null while they succeed (for /ready). */
  get flushError(): string | null {
    return this.#flushFailures > 0 ? this.#lastFlushError : null;
  }

  #pause(): void {
    if (this.#paused) return;
    this.#paused = true;
    try {
      this.#consumer.pause(this.#topicPartitions());
    } catch {
      // not running: nothing to pause
    }
  }

  #resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    try {
      this.#consumer.resume(this.#topicPartitions());
    } catch {
      // not running: nothing to resume
    }
  }

  #topicPartitions(): { topic: string; partitions: number[] }[] {
    const byTopic = new Map<string, number[]>();
    for (const a of this.#assignment) {
      byTopic.set(a.topic, [...(byTopic.get(a.topic) ?? []), a.partition]);
    }
    return [...byTopic].map(([topic, partitions]) => ({ topic, partitions }));
  }

  /**
   * Flushes the owned partitions once (serialised: one flush at a time): all of them, or with
   * `partitions: "due"` (the periodic flush) those whose refresh slot has started or that have
   * just drained a backlog (flush_schedule.ts). With `snapshot` (the default for callers
   * outside the loop: reset, replay, stop) actor snapshots are stored and offsets committed
   * too; with "due", for the flushed partitions whose snapshot interval has passed.
   */
  flush(
    options: {
      snapshot: boolean | "due";
      partitions?: "all" | "due";
      /** Live actors to passivate below the cap: a batch waits to add that many. */
      room?: number;
    } = { snapshot: true },
  ): Promise<void> {
    const run = this.#flushing.then(() =>
      withSpan(
        "actors.flush",
        { snapshot: options.snapshot },
        () => this.#flushOnce(options.snapshot, options.partitions ?? "all", options.room ?? 0),
      )
    );
    this.#flushing = run.catch(() => {});
    return run;
  }

  async #flushOnce(snapshot: boolean | "due", which: "all" | "due", room: number): Promise<void> {
    const started = performance.now();
    const now = this.#now();
    const live = this.partitions.filter((p) =>
      p.alive && (which === "all" || this.#refresh.due(p, now) || this.#drainedBacklog(p))
    );
    const plans: { p: AnyPartition; plan: PartitionFlushPlan }[] = [];
    const interval = this.#d.config.DATA_PROC_SNAPSHOT_INTERVAL_MS;
    for (const p of live) {
      const due = snapshot === "due"
        ? now - p.lastSnapshotMs >= interval || this.#drainedBacklog(p)
        : snapshot;
      this.#refresh.flushed(p, now);
      plans.push({ p, plan: await p.plan({ snapshot: due }) });
    }
    const planned = performance.now();
    const work = plans.filter(({ plan }) =>
      plan.commitOffset !== null || plan.snapshots.length > 0 || plan.dlq.length > 0 ||
      plan.flushedKeys.length > 0
    );
    if (work.length === 0) return;
    try {
      // Fence check, sinks, fenced Redis call, commit: supervisors/flush_path.ts.
      const { stored, fenced, timings } = await runFlush(this.#sinks, work);
      for (const { p, storedEpoch } of fenced) await this.#lost(p, storedEpoch);
      for (const { p, plan } of stored) p.flushed(plan);
      const sunk = timings.sunkMs;
      metrics.flushedActors.inc(stored.reduce((n, w) => n + w.plan.flushedKeys.length, 0));
      // Over the cap (less the room a waiting batch needs), each partition keeps its share of
      // it in proportion to its live actors (an even split would give partitions without
      // actors, such as curves', a share).
      const keep = Math.max(0, this.#d.config.DATA_PROC_MAX_LIVE_ACTORS - room);
      const liveNow = this.#liveActors();
      for (const p of live) {
        await p.passivate({
          idleMs: this.#d.config.DATA_PROC_ACTOR_IDLE_PASSIVATE_MS,
          maxLive: liveNow <= keep
            ? keep
            : Math.max(1, Math.floor((keep * p.liveActors) / liveNow)),
          now: this.#now(),
        });
      }
      this.#updateActorGauges();
      const total = performance.now() - started;
      if (total > 1000) {
        this.#d.logger.warn("slow flush", {
          total_ms: Math.round(total),
          plan_ms: Math.round(planned - started),
          kafka_clickhouse_ms: Math.round(sunk - planned),
          redis_commit_passivate_ms: Math.round(performance.now() - sunk),
          actors: stored.reduce((n, w) => n + w.plan.flushedKeys.length, 0),
          snapshot_bytes: stored.reduce(
            (n, w) => n + w.plan.snapshots.reduce((m, x) => m + x.value.length, 0),
            0,
          ),
        });
      }
      this.#flushFailures = 0;
      this.#lastFlushError = null;
    } catch (err) {
      // Nothing of these plans is committed past what is stored, and their changes were
      // taken: pause consuming, rebuild each partition from its stored state and retry.
      this.#flushFailures++;
      this.#lastFlushError = (err as Error)?.message ?? String(err);
      this.#pause();
      for (const { p } of work) if (p.alive) await this.#restartPartition(p, err, 0);
      throw err;
    } finally {
      metrics.flushDuration.observe(performance.now() - started);
    }
  }

  /**
   * The partition's fence moved: a newer owner claimed it (Kafka moved it; the coming
   * assignment says so) or Redis lost it (restarted empty or rolled back). Kafka's assignment
   * decides: while this node is still assigned the partition, it claims it again after a
   * pause (a rebalance in progress settles who owns it meanwhile).
   */
  async #lost(p: AnyPartition, storedEpoch: number | null): Promise<void> {
    metrics.fencedWrites.inc();
    this.#d.logger.warn("partition fenced: its epoch moved", {
      topic: p.topic,
      partition: p.partition,
      epoch: p.epoch,
      stored_epoch: storedEpoch,
    });
    this.#forget(p);
    await p.stop();
    void (async () => {
      await sleep(RECLAIM_AFTER_MS, this.#abort.signal);
      const id = `${p.topic}:${p.partition}`;
      if (this.#isAssigned(p.topic, p.partition) && !this.#partitions.has(id)) {
        await this.#claim(p.topic, p.partition);
      }
    })();
  }

  #liveActors(): number {
    let n = 0;
    for (const p of this.#partitions.values()) n += p.liveActors;
    return n;
  }

  #updateActorGauges(): void {
    const counts = new Map([...this.#kinds.values()].map(({ kind }) => [kind.name, 0]));
    for (const p of this.#partitions.values()) {
      counts.set(p.kind, (counts.get(p.kind) ?? 0) + p.liveActors);
    }
    for (const [kind, n] of counts) metrics.liveActors.labels(kind).set(n);
  }

  /**
   * Graceful stop: stop fetching, let the batches in progress finish, flush and commit
   * everything, then leave the group so the partitions move at once.
   */
  async stop(): Promise<void> {
    this.#pause();
    await Promise.all(this.partitions.map((p) => p.idle()));
    this.#abort.abort();
    await this.#flushLoop;
    try {
      await this.flush();
    } catch (err) {
      this.#d.logger.error("final flush failed; the next owner redoes the work", { err });
    }
    for (const p of this.partitions) await p.stop();
    await this.#consumer.disconnect();
    await this.#producer.disconnect();
  }
}

export type ResetOutcome =
  | { status: "reset"; versionBase: number }
  | { status: "unknown" }
  | { status: "moved" }
  | { status: "replaying" };

function newestTimestampMs(messages: readonly { timestamp: string }[]): number {
  return messages.reduce((max, m) => Math.max(max, Number(m.timestamp)), 0);
}

function clockFields(p: AnyPartition, now: number) {
  const view = p.clockView();
  return {
    clock_ms: view.clock_ms,
    quiet_ms: view.quiet_ms,
    watermark_lag_ms: view.clock_ms === null ? null : now - view.clock_ms,
    pending_close_keys: p.pendingKeys,
    sources: Object.entries(view.sources.sources).map(([id, mark]) => {
      const at = id.lastIndexOf(":");
      return {
        source_topic: id.slice(0, at),
        source_partition: Number(id.slice(at + 1)),
        ...mark,
      };
    }),
  };
}
