/**
 * One owned partition of a normalized topic: its key actors (spawned, revived from
 * snapshots, passivated), its event-time clock (from the watermark records in it), the keys
 * that still have bars to close, the offset it has processed, and the writes its next flush
 * owes. A key's first crash restarts the partition with the key under watch (actors keep
 * no events between snapshots, so only a re-read rebuilds it); a watched key's actor keeps
 * them, so a crash is retried event by event, and an event that crashes it every time is a
 * poison event and goes to the DLQ.
 */
import type { KafkaMessage } from "kafkajs";
import type { z } from "zod";
import type { ActorOutputs, KeyedEvent, KindAdapter } from "../actors/actor_kinds.ts";
import {
  applyWatermark,
  currentClock,
  emptyClockState,
  type EventClock,
} from "../actors/event_clock.ts";
import {
  ActorCrashedError,
  KeyActor,
  type PersistedActor,
  type Rejected,
} from "../actors/key_actor.ts";
import { buildDlqRecord, type DlqRecord } from "../messages/dlq_record.ts";
import { decodeJson } from "../messages/decode.ts";
import type {
  ClockCheckpoint,
  ClockState,
  PersistedPartition,
} from "../messages/partition_state.ts";
import { isControlRecord, WatermarkRecord } from "../messages/watermark.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import type { ActorStore } from "../stores/actor_store.ts";
import { yieldToIo, yieldToLoop } from "../timing/sleep.ts";
import { RestartIntensity } from "./restart_policy.ts";

export interface PartitionOptions<T> {
  topic: string;
  partition: number;
  epoch: number;
  adapter: KindAdapter<T>;
  schema: z.ZodType<T>;
  /** Optional hand-written check of the schema's rules for the hot path (see decodeJson). */
  fastCheck?: (value: unknown) => value is T;
  keyOf: (value: T) => string;
  store: ActorStore;
  historySize: number;
  now: () => number;
  logger: Logger;
  /** Attempts for an event that makes its machine throw before it goes to the DLQ. */
  poisonRetries?: number;
  /** Told how many events each key received in a batch (hot-key tracking). */
  onKeyEvents?: (kind: string, key: string, count: number) => void;
  /** Told when a batch closed a window, so final bars are flushed without waiting. */
  onWindowClosed?: () => void;
  /** The partition's stored state (clock, keys with open bars), when it had one. */
  persisted?: PersistedPartition;
  /** Keys that crashed in an earlier generation: their actors keep events between snapshots. */
  watchedKeys?: ReadonlySet<string>;
  /**
   * Told of an escalation raised outside a batch (a crash while a replay's held events are
   * applied); the partition has stopped taking work and must be restarted.
   */
  onEscalation?: (err: PartitionEscalation) => void;
  /**
   * The highest version the sinks hold for each key (ClickHouse outlives Redis). Asked only
   * while the partition rebuilds from no stored state, for keys without a snapshot: their
   * versions must continue above rows a replay or reset wrote before Redis was lost.
   */
  versionFloor?: (keys: string[]) => Promise<Map<string, number>>;
  /**
   * When its snapshots count as last stored, for the periodic snapshot schedule (default: at
   * creation). Set earlier by a part of the interval, it spreads the partitions' snapshots.
   */
  lastSnapshotMs?: number;
}

/** What one flush of this partition writes, captured at one instant. */
export interface PartitionFlushPlan {
  topic: string;
  partition: number;
  epoch: number;
  /** Offset to commit after every sink acknowledged (last processed + 1), or null. */
  commitOffset: number | null;
  outputs: ActorOutputs;
  snapshots: { key: string; value: string }[];
  dlq: DlqRecord[];
  flushedKeys: string[];
  /** The clock as of the committed offset, kept for replays (about once a minute). */
  clockCheckpoint: ClockCheckpoint | null;
}

/** A second replay asked to hold keys of a partition that a replay holds already. */
export class HoldConflictError extends Error {
  constructor(topic: string, partition: number) {
    super(`a replay is already running on ${topic}[${partition}]`);
    this.name = "HoldConflictError";
  }
}

/** The partition can no longer be trusted to continue; its parent must restart it. */
export class PartitionEscalation extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "PartitionEscalation";
  }
}

/**
 * A key not under watch crashed: its events since its snapshot were not kept, so the parent
 * restarts the partition (it re-reads them) with this key watched.
 */
export class ActorCrashEscalation extends PartitionEscalation {
  constructor(readonly key: string, topic: string, partition: number) {
    super(`actor ${key} of ${topic}[${partition}] crashed; rebuilding the partition`);
    this.name = "ActorCrashEscalation";
  }
}

const STAGE = "aggregate";
/**
 * Synchronous work between two yields to the event loop, while a batch is applied or a
 * flush planned: other partitions' batches, fetches and the flush interleave at this grain,
 * so no event waits behind more than a few slices.
 */
const SLICE_MS = 4;

const keyDecoder = new TextDecoder();

/**
 * A batch's distinct record keys, watermark records left out. A record's key is its actor's on
 * the normalized topics; records without one are counted, each a possible new actor.
 */
export interface RecordKeys {
  keys: Set<string>;
  keyless: number;
}

export function recordKeysOf(messages: readonly KafkaMessage[]): RecordKeys {
  const keys = new Set<string>();
  let keyless = 0;
  for (const m of messages) {
    if (isControlRecord(m.headers)) continue;
    if (m.key == null) keyless++;
    else keys.add(keyDecoder.decode(m.key));
  }
  return { keys, keyless };
}

/** Wall-clock time between two clock checkpoints of a partition. */
const CLOCK_CHECKPOINT_EVERY_MS = 60_000;

export class PartitionSupervisor<T> {
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly #o: PartitionOptions<T>;
  readonly #actors = new Map<string, KeyActor<T>>();
  /** The event-time clock built from the watermark records of the batches applied so far. */
  #clock: ClockState;
  /** Watermark records at or below this offset are already in `#clock`. */
  #clockIncludes: number;
  /** Keys (live or passivated) with an open bar, and the clock value that closes it. */
  readonly #pending = new Map<string, number>();
  /** At most the smallest value in #pending: no close pass is needed below it. */
  #pendingFloor = Infinity;
  /** A restored partition checks once for closes its stored actors may not hold yet. */
  #closeCheckDue: boolean;
  #lastCheckpointMs = -Infinity;
  #lastSnapshotMs: number;
  #behind = false;
  /** No stored state: the partition is being rebuilt from the start of its log. */
  readonly #rebuildingFromLog: boolean;
  readonly #restarts = new RestartIntensity({ maxRestarts: 10, windowMs: 60_000 });
  #dlq: DlqRecord[] = [];
  #processedOffset = -1;
  #flushedOffset = -1;
  #alive = true;
  /** Keys being replayed: their live events wait in #held until the replay swaps actors. */
  #holding: ((key: string) => boolean) | null = null;
  /**
   * Where the partition stood when the hold began. Until the release, flushes store and
   * commit this position, not the current one: the held events are not in any actor yet, so
   * a crash must fetch them again (the keys that did apply them skip them by offset).
   */
  #holdStart: { offset: number; clock: ClockState } | null = null;
  #held = new Map<string, { events: KeyedEvent<T>[]; raw: KafkaMessage[] }>();
  /** Resolves once the batch in progress is done (revoke waits for it). */
  #inFlight: Promise<void> = Promise.resolve();

  constructor(options: PartitionOptions<T>) {
    this.#o = options;
    this.topic = options.topic;
    this.partition = options.partition;
    this.epoch = options.epoch;
    const restored = options.persisted;
    this.#clock = restored ? structuredClone(restored.clock) : emptyClockState();
    this.#clockIncludes = restored?.offset ?? -1;
    for (const [key, at] of Object.entries(restored?.pending ?? {})) this.#setPending(key, at);
    this.#closeCheckDue = restored !== undefined;
    this.#rebuildingFromLog = restored === undefined;
    this.#lastSnapshotMs = options.lastSnapshotMs ?? options.now();
  }

  /** When a flush last captured this partition's snapshots (see plan). */
  get lastSnapshotMs(): number {
    return this.#lastSnapshotMs;
  }

  /** Whether it was seen a whole snapshot interval behind since its last snapshot. */
  get behind(): boolean {
    return this.#behind;
  }

  /** Notes that it is draining a backlog: its next flush once caught up snapshots it. */
  markBehind(): void {
    this.#behind = true;
  }

  /** The clock this partition's events are judged by now. */
  get clock(): EventClock {
    return currentClock(this.#clock);
  }

  /** The clock and the latest watermark record of each source partition (for operators). */
  clockView(): { clock_ms: number | null; quiet_ms: number | null; sources: ClockState } {
    const { clockMs, quietMs } = this.clock;
    return { clock_ms: clockMs, quiet_ms: quietMs, sources: structuredClone(this.#clock) };
  }

  /** Keys waiting for the clock to close a bar. */
  get pendingKeys(): number {
    return this.#pending.size;
  }

  get alive(): boolean {
    return this.#alive;
  }

  get liveActors(): number {
    return this.#actors.size;
  }

  get processedOffset(): number {
    return this.#processedOffset;
  }

  get kind() {
    return this.#o.adapter.kind;
  }

  /** How many actors applying a batch with these record keys may add: those not live. */
  newKeys(batch: RecordKeys): number {
    let n = batch.keyless;
    for (const key of batch.keys) if (!this.#actors.has(key)) n++;
    return n;
  }

  actor(key: string): KeyActor<T> | undefined {
    return this.#actors.get(key);
  }

  keys(): IterableIterator<string> {
    return this.#actors.keys();
  }

  /**
   * Runs `work` after the work queued before it: batches, holds, wall-clock ticks and
   * passivation never interleave (they all await Redis while they change the actor map).
   */
  #serial<R>(work: () => R | Promise<R>): Promise<R> {
    const run = this.#inFlight.then(work);
    this.#inFlight = run.then(() => {}, () => {});
    return run;
  }

  /** Applies one fetched batch, in offset order. */
  handle(messages: readonly KafkaMessage[]): Promise<void> {
    return this.#serial(() => this.#handle(messages));
  }

  async #handle(messages: readonly KafkaMessage[]): Promise<void> {
    if (!this.#alive || messages.length === 0) return;
    const now = this.#o.now();
    const { segments, raw, keys, clock } = this.#decode(messages, now);
    await this.#revive([...keys].filter((k) => !this.#actors.has(k)), now);
    if (!this.#alive) return;
    if (this.#closeCheckDue) {
      this.#closeCheckDue = false;
      await this.#closeDue(this.clock, now);
    }

    let applied = 0;
    if (segments.some((s) => s.clockAfter?.quietMs != null)) {
      // Quiet close holds only while every source is idle: apply segment by segment, so each
      // key meets every quiet time that came and went in this batch in partition order.
      for (const segment of segments) {
        applied += await this.#applyEvents(segment.byKey, raw, now);
        if (segment.clockAfter) await this.#closeDue(segment.clockAfter, now);
        if (!this.#alive) return;
      }
    } else {
      // Otherwise one batch per key (each event carries its own clock), then the closes of
      // the final clock: finality by clock is monotone, so doing them last changes nothing.
      applied += await this.#applyEvents(mergeSegments(segments), raw, now);
      if (segments.length > 1) await this.#closeDue(clock.current, now);
      if (!this.#alive) return;
    }
    const done = this.#o.now();
    metrics.events.labels(STAGE, "applied").inc(applied);
    // Only a batch applied whole moves the clock: a batch that failed midway is fetched
    // again and its events must meet the clock at their own offsets once more.
    this.#clock = clock.state;
    this.#clockIncludes = clock.includes;
    const clockMs = this.#clock.clock_ms;
    if (clockMs !== null) {
      metrics.watermarkLag.labels(this.topic, String(this.partition)).set(done - clockMs);
    }
    this.#processedOffset = Number(messages[messages.length - 1]!.offset);
  }

  /**
   * Decodes a batch in offset order: data records become events (each with the clock at its
   * offset), grouped by key into segments that end where a watermark record moved the clock.
   */
  #decode(messages: readonly KafkaMessage[], now: number) {
    type Segment = { byKey: Map<string, KeyedEvent<T>[]>; clockAfter: EventClock | null };
    const segments: Segment[] = [{ byKey: new Map(), clockAfter: null }];
    const raw = recordsByOffset(messages);
    const keys = new Set<string>();
    const state = structuredClone(this.#clock);
    let includes = this.#clockIncludes;
    let clock = currentClock(state);
    for (const m of messages) {
      const offset = Number(m.offset);
      if (isControlRecord(m.headers)) {
        if (offset <= includes) continue; // already in the clock (restored or redelivered)
        includes = offset;
        const mark = decodeJson(WatermarkRecord, m.value);
        if (!mark.ok) {
          this.#o.logger.warn("skipping a control record that is not a watermark", {
            offset,
            error: mark.message,
          });
          continue;
        }
        applyWatermark(state, mark.value);
        clock = currentClock(state);
        segments.at(-1)!.clockAfter = clock;
        segments.push({ byKey: new Map(), clockAfter: null });
        continue;
      }
      const decoded = decodeJson(this.#o.schema, m.value, this.#o.fastCheck);
      if (!decoded.ok) {
        this.#toDlq(m, "invalid_payload", decoded.message, now);
        continue;
      }
      const key = this.#o.keyOf(decoded.value);
      const event = { offset, appendTimeMs: Number(m.timestamp), clock, value: decoded.value };
      const byKey = segments.at(-1)!.byKey;
      const list = byKey.get(key);
      if (list) list.push(event);
      else byKey.set(key, [event]);
      keys.add(key);
    }
    if (this.#holding) {
      for (const segment of segments) this.#holdBack(segment.byKey, raw);
      for (const key of keys) if (this.#held.has(key)) keys.delete(key);
    }
    return { segments, raw, keys, clock: { state, includes, current: clock } };
  }

  /**
   * Applies one segment's events key by key, in slices of SLICE_MS that yield to the event
   * loop (a fetched batch can hold thousands of events); returns how many were queued. The
   * batch keeps the partition (#serial) meanwhile: nothing else of it interleaves. Each
   * slice's events are observed as applied when the slice ends. Each key leaves `byKey` as it
   * is applied, so the map is empty afterwards.
   */
  async #applyEvents(
    byKey: Map<string, KeyedEvent<T>[]>,
    raw: RecordsByOffset,
    now: number,
  ): Promise<number> {
    let applied = 0;
    let closed = false;
    // Append times of the slice's events, not the events: an applied key's events are
    // dropped from the batch at once, so the garbage collector need not keep (and promote)
    // every decoded event of a fetched batch until its last key is applied.
    const appended: number[] = [];
    let sliceStart = performance.now();
    for (const [key, events] of byKey) {
      if (performance.now() - sliceStart >= SLICE_MS) {
        this.#observeApplied(appended);
        await yieldToLoop();
        if (!this.#alive) return applied;
        sliceStart = performance.now();
      }
      byKey.delete(key);
      for (const e of events) appended.push(e.appendTimeMs);
      this.#o.onKeyEvents?.(this.kind, key, events.length);
      const actor = this.#actors.get(key)!;
      let queued = 0;
      for (const e of events) if (actor.enqueue(e)) queued++;
      if (queued === 0) continue;
      try {
        this.#reportRejections(actor.drain(now), raw, now);
      } catch (err) {
        if (!(err instanceof ActorCrashedError)) throw err;
        await this.#recover(key, err.batch as KeyedEvent<T>[], raw, now);
      }
      this.#track(this.#actors.get(key)!);
      applied += queued;
      closed ||= actor.windowClosed;
    }
    this.#observeApplied(appended);
    if (closed) this.#o.onWindowClosed?.();
    return applied;
  }

  /** Kafka append -> applied, for the events of a slice just applied (then empties it). */
  #observeApplied(appended: number[]): void {
    const latency = metrics.processingLatency.labels(STAGE);
    const done = this.#o.now();
    for (const t of appended) latency.observe(Math.max(0, done - t));
    appended.length = 0;
  }

  /**
   * Hands the clock to every key it closes a bar for, reviving passivated ones. Keys being
   * replayed are left to the replay, which rebuilds them up to the clock.
   */
  async #closeDue(clock: EventClock, now: number): Promise<void> {
    const clockMs = clock.clockMs ?? -Infinity;
    const quietMs = clock.quietMs ?? -Infinity;
    if (clockMs < this.#pendingFloor && quietMs <= this.#pendingFloor) return;
    const due: string[] = [];
    let floor = Infinity;
    for (const [key, at] of this.#pending) {
      if ((at <= clockMs || at < quietMs) && !this.#holding?.(key)) due.push(key);
      else if (at < floor) floor = at;
    }
    this.#pendingFloor = floor;
    if (due.length === 0) return;
    // Revived only to close: active as of their snapshot, so once flushed they are the first
    // to passivate again, before keys that just had events.
    await this.#revive(due.filter((k) => !this.#actors.has(k)), now, { activeAsStored: true });
    let closed = false;
    for (const key of due) {
      const actor = this.#actors.get(key);
      if (!actor) continue;
      actor.advance(clock);
      this.#track(actor);
      closed ||= actor.windowClosed;
    }
    if (closed) this.#o.onWindowClosed?.();
  }

  /** Records when the actor next has a bar to close (or that it has none). */
  #track(actor: KeyActor<T>): void {
    const at = actor.nextCloseAt();
    if (at === null) this.#pending.delete(actor.key);
    else this.#setPending(actor.key, at);
  }

  #setPending(key: string, at: number): void {
    this.#pending.set(key, at);
    if (at < this.#pendingFloor) this.#pendingFloor = at;
  }

  #holdBack(byKey: Map<string, KeyedEvent<T>[]>, raw: RecordsByOffset): void {
    for (const [key, events] of byKey) {
      if (!this.#holding!(key)) continue;
      const held = this.#held.get(key) ?? { events: [], raw: [] };
      for (const e of events) {
        held.events.push(e);
        const m = raw.get(e.offset);
        if (m) held.raw.push(m);
      }
      this.#held.set(key, held);
      byKey.delete(key);
    }
  }

  /**
   * Holds back live events of the matching keys from the next batch on; returns the last
   * offset applied before the hold (what a replay must rebuild up to).
   */
  hold(match: (key: string) => boolean): Promise<number> {
    return this.#serial(() => {
      if (this.#holding) throw new HoldConflictError(this.topic, this.partition);
      this.#holding = match;
      this.#holdStart = { offset: this.#processedOffset, clock: structuredClone(this.#clock) };
      return this.#processedOffset;
    });
  }

  /** A replay holds this key now (its live events wait for the replay). */
  holds(key: string): boolean {
    return this.#holding?.(key) ?? false;
  }

  /**
   * Ends a hold: installs rebuilt actors (when given) in place of the live ones, then applies
   * the events held meanwhile to whichever actor now holds each key.
   */
  release(rebuilt: Map<string, KeyActor<T>> | null): Promise<void> {
    return this.#serial(async () => {
      const now = this.#o.now();
      this.#holding = null;
      this.#holdStart = null;
      for (const [key, actor] of rebuilt ?? []) {
        this.#actors.get(key)?.stop();
        this.#actors.set(key, actor);
      }
      const held = this.#held;
      this.#held = new Map();
      await this.#revive([...held.keys()].filter((k) => !this.#actors.has(k)), now);
      for (const [key, { events, raw }] of held) {
        const actor = this.#actors.get(key)!;
        for (const e of events) actor.enqueue(e);
        const rawByOffset = new Map(raw.map((m) => [Number(m.offset), m]));
        try {
          this.#reportRejections(actor.drain(now), rawByOffset, now);
        } catch (err) {
          if (!(err instanceof ActorCrashedError)) throw err;
          try {
            await this.#recover(key, err.batch as KeyedEvent<T>[], rawByOffset, now);
          } catch (escalation) {
            if (!(escalation instanceof PartitionEscalation)) throw escalation;
            // No batch carries this to the parent: stop storing anything, and tell it.
            this.#alive = false;
            this.#o.onEscalation?.(escalation);
            return;
          }
        }
      }
      // Closes the clock made due while the keys were held (it skipped them).
      for (const key of new Set([...(rebuilt?.keys() ?? []), ...held.keys()])) {
        const actor = this.#actors.get(key);
        if (!actor) continue;
        actor.advance(this.clock);
        this.#track(actor);
      }
    });
  }

  /**
   * An actor restored from a persisted state outside the partition's registry (a replay's
   * rebuilt key, swapped in by `release`).
   */
  restoredActor(persisted: PersistedActor): KeyActor<T> {
    return new KeyActor(this.#o.adapter, persisted.key, this.partition, {
      historySize: this.#o.historySize,
      nowMs: this.#o.now(),
      persisted,
    });
  }

  /** The highest version a key has issued, from its live actor or its snapshot (0: none). */
  async maxVersion(key: string): Promise<number> {
    const live = this.#actors.get(key);
    if (live) return live.maxVersion();
    const stored = (await this.#o.store.load(this.kind, [key])).get(key);
    if (!stored) return 0;
    const actor = new KeyActor(this.#o.adapter, key, this.partition, {
      historySize: 0,
      nowMs: this.#o.now(),
      persisted: stored,
    });
    const version = actor.maxVersion();
    actor.stop();
    return version;
  }

  async #revive(
    keys: string[],
    now: number,
    options: { activeAsStored?: boolean } = {},
  ): Promise<void> {
    if (keys.length === 0) return;
    const persisted = await this.#o.store.load(this.kind, keys);
    const floors = this.#rebuildingFromLog && this.#o.versionFloor
      ? await this.#o.versionFloor(keys.filter((k) => !persisted.has(k)))
      : undefined;
    for (const key of keys) {
      const floor = floors?.get(key) ?? 0;
      const stored = persisted.get(key);
      const activeAt = options.activeAsStored ? stored?.saved_at_ms ?? now : now;
      this.#spawn(key, stored, activeAt, floor > 0 ? floor + 1 : undefined);
    }
  }

  #spawn(
    key: string,
    persisted: PersistedActor | undefined,
    now: number,
    versionBase?: number,
  ): KeyActor<T> {
    // A key has one machine at a time: #recover spawns the key again for each attempt.
    this.#actors.get(key)?.stop();
    const actor = new KeyActor(this.#o.adapter, key, this.partition, {
      historySize: this.#o.historySize,
      nowMs: now,
      keepUnflushed: this.#o.watchedKeys?.has(key) ?? false,
      ...(persisted ? { persisted } : {}),
      ...(versionBase !== undefined ? { versionBase } : {}),
    });
    this.#actors.set(key, actor);
    return actor;
  }

  #reportRejections(
    rejected: Rejected<T>[],
    raw: RecordsByOffset,
    now: number,
  ): void {
    for (const r of rejected) {
      if (r.reason === "late_event") metrics.lateEvents.inc();
      const m = raw.get(r.event.offset);
      if (m) this.#toDlq(m, r.reason, r.message, now);
    }
  }

  /**
   * Rebuilds a crashed actor from its stored snapshot plus its unflushed events, then
   * applies the failed batch one event at a time; an event that still crashes after the
   * retries goes to the DLQ as `poison_event`. Too many crashes escalate to the partition.
   */
  async #recover(
    key: string,
    batch: KeyedEvent<T>[],
    raw: RecordsByOffset,
    now: number,
  ): Promise<void> {
    const crashed = this.#actors.get(key)!;
    const unflushed = crashed.unflushed;
    crashed.stop();
    metrics.actorRestarts.labels("actor").inc();
    if (unflushed === null) {
      this.#o.logger.warn("actor crashed; restarting its partition with the key watched", {
        key,
        partition: this.partition,
      });
      throw new ActorCrashEscalation(key, this.topic, this.partition);
    }
    const replayLog = [...unflushed];
    const restarts = crashed.restarts + 1;
    if (!this.#restarts.record(now)) {
      throw new PartitionEscalation(`actor restarts in ${this.topic}[${this.partition}] exceeded`);
    }
    this.#o.logger.warn("actor crashed; rebuilding", { key, partition: this.partition, restarts });
    const stored = (await this.#o.store.load(this.kind, [key])).get(key);
    const retries = this.#o.poisonRetries ?? 3;
    const accepted: KeyedEvent<T>[] = [];
    for (const event of batch) {
      let ok = false;
      for (let attempt = 1; attempt <= retries && !ok; attempt++) {
        // A restored machine works on the snapshot's own context object: each attempt
        // starts from a copy, or the next one would start where this one crashed.
        const actor = this.#spawn(key, structuredClone(stored), now);
        actor.restarts = restarts;
        try {
          for (const e of [...replayLog, ...accepted]) actor.enqueue(e);
          actor.drain(now);
          actor.enqueue(event);
          this.#reportRejections(actor.drain(now), raw, now);
          ok = true;
        } catch (err) {
          if (!(err instanceof ActorCrashedError)) throw err;
          actor.stop();
        }
      }
      if (ok) accepted.push(event);
      else {
        const m = raw.get(event.offset);
        this.#o.logger.error("poison event sent to the DLQ", { key, offset: event.offset });
        if (m) this.#toDlq(m, "poison_event", `machine threw ${retries} times`, now);
      }
    }
    // Rebuild once more from the events that applied cleanly: the actor left in the map
    // by the last attempt may be a crashed one (#spawn stops it).
    const actor = this.#spawn(key, structuredClone(stored), now);
    actor.restarts = restarts;
    for (const e of [...replayLog, ...accepted]) actor.enqueue(e);
    actor.drain(now);
  }

  #toDlq(
    m: KafkaMessage,
    reason: DlqRecord["reason"],
    message: string,
    now: number,
  ): void {
    metrics.dlq.labels(STAGE, reason).inc();
    this.#dlq.push(buildDlqRecord(
      {
        topic: this.topic,
        partition: this.partition,
        offset: m.offset,
        key: m.key,
        value: m.value,
      },
      { stage: STAGE, reason, message, nowMs: now },
    ));
  }

  /**
   * Operator reset of one key: its state starts again empty, with versions continuing above
   * every version it or the sinks hold, so version-guarded sinks accept what comes next. Returns the
   * new version base, or undefined when the key has neither a live actor nor a snapshot.
   */
  async reset(key: string, storedVersion = 0): Promise<number | undefined> {
    const now = this.#o.now();
    if (!this.#actors.has(key)) {
      const stored = (await this.#o.store.load(this.kind, [key])).get(key);
      if (!stored) return undefined;
      this.#spawn(key, stored, now);
    }
    const actor = this.#actors.get(key)!;
    // Above what the sinks hold too: just after a restart or handoff they can be ahead of
    // the snapshot the actor came from, and would then win over every post-reset write.
    const versionBase = Math.max(actor.maxVersion(), storedVersion) + 1;
    actor.reset(versionBase);
    this.#track(actor);
    return versionBase;
  }

  /**
   * Captures what the next flush writes: every dirty actor's changes and snapshot, the DLQ
   * records owed, and the offset that becomes committable once all of it is acknowledged.
   */
  async plan(options: { snapshot: boolean }): Promise<PartitionFlushPlan> {
    // Captured between two batches, so the offset, the clock and the open keys agree:
    // everything at or below the offset is in the actors collected below (events applied
    // while this plan yields only add to snapshots, keyed by their offsets). Only a plan
    // with snapshots may commit: the offset must be covered by stored state.
    const { now, commitOffset, partitionState, clockCheckpoint, dlq, dirty } = await this.#serial(
      () => {
        const now = this.#o.now();
        if (options.snapshot) {
          this.#lastSnapshotMs = now;
          this.#behind = false;
        }
        if (!this.#alive) {
          // Stopped (lost, or escalated outside a batch): its restart redoes the work.
          return {
            now,
            commitOffset: null,
            partitionState: null,
            clockCheckpoint: null,
            dlq: [],
            dirty: [],
          };
        }
        const position = this.#holdStart ?? { offset: this.#processedOffset, clock: this.#clock };
        const commitOffset = options.snapshot && position.offset > this.#flushedOffset
          ? position.offset + 1
          : null;
        const dirty = [...this.#actors.values()].filter((a) => a.dirty);
        // Stored last, after the snapshots it relies on; also whenever snapshots are stored
        // during a hold, so the open keys it lists cover theirs.
        const partitionState = commitOffset === null && !(options.snapshot && dirty.length > 0)
          ? null
          : {
            key: this.#o.store.partitionKey(this.topic, this.partition),
            value: JSON.stringify(this.#persistState(position.offset, position.clock, now)),
          };
        let clockCheckpoint: ClockCheckpoint | null = null;
        if (
          commitOffset !== null && this.#holdStart === null &&
          now - this.#lastCheckpointMs >= CLOCK_CHECKPOINT_EVERY_MS
        ) {
          this.#lastCheckpointMs = now;
          clockCheckpoint = { offset: this.#processedOffset, clock: structuredClone(this.#clock) };
        }
        const dlq = this.#dlq;
        this.#dlq = [];
        return { now, commitOffset, partitionState, clockCheckpoint, dlq, dirty };
      },
    );
    const outputs: ActorOutputs = { projections: [], barRows: [], curveRows: [], messages: [] };
    const snapshots: { key: string; value: string }[] = [];
    const flushedKeys: string[] = [];
    let sliceStart = performance.now();
    for (let i = 0; i < dirty.length; i++) {
      // Serialising thousands of snapshots at once would stall every partition, and fetch
      // responses would wait for the whole plan: yield to both.
      if (performance.now() - sliceStart >= SLICE_MS) {
        await yieldToIo();
        sliceStart = performance.now();
      }
      const actor = dirty[i]!;
      if (actor.stopped || !actor.dirty) continue; // crashed and rebuilt, or passivated
      const out = actor.collect();
      outputs.projections.push(...out.projections);
      outputs.barRows.push(...out.barRows);
      outputs.curveRows.push(...out.curveRows);
      outputs.messages.push(...out.messages);
      flushedKeys.push(actor.key);
      if (!options.snapshot) continue;
      snapshots.push({
        key: this.#o.store.snapshotKey(this.kind, actor.key),
        value: JSON.stringify(actor.persist(now)),
      });
      actor.snapshotted();
    }
    if (partitionState) snapshots.push(partitionState);
    return {
      topic: this.topic,
      partition: this.partition,
      epoch: this.epoch,
      commitOffset,
      outputs,
      snapshots,
      dlq,
      flushedKeys,
      clockCheckpoint,
    };
  }

  #persistState(offset: number, clock: ClockState, now: number): PersistedPartition {
    return {
      offset,
      clock,
      pending: Object.fromEntries(this.#pending),
      saved_at_ms: now,
    };
  }

  /** Records that a plan reached every sink and its offset (if any) was committed. */
  flushed(plan: PartitionFlushPlan): void {
    if (plan.commitOffset !== null) this.#flushedOffset = plan.commitOffset - 1;
  }

  /**
   * Frees flushed actors idle for `idleMs`, then the least recently active ones while more
   * than `maxLive` are live. Their state is already in their stored snapshot.
   */
  passivate(options: { idleMs: number; maxLive: number; now: number }): Promise<number> {
    return this.#serial(() => {
      const candidates = [...this.#actors.values()].filter((a) => !a.dirty && a.mailboxDepth === 0);
      candidates.sort((a, b) => a.lastActiveMs - b.lastActiveMs);
      let freed = 0;
      for (const actor of candidates) {
        const idle = options.now - actor.lastActiveMs >= options.idleMs;
        if (!idle && this.#actors.size <= options.maxLive) break;
        actor.stop(); // its open bars stay in #pending: a close revives it
        this.#actors.delete(actor.key);
        freed++;
      }
      if (freed > 0) metrics.passivations.labels(this.kind).inc(freed);
      return freed;
    });
  }

  /** Stops every actor without flushing (the partition was lost or is being restarted). */
  async stop(): Promise<void> {
    this.#alive = false;
    await this.#inFlight;
    for (const actor of this.#actors.values()) actor.stop();
    this.#actors.clear();
    this.#pending.clear();
  }

  /** Waits for the batch in progress, if any. */
  async idle(): Promise<void> {
    await this.#inFlight;
  }
}

/** The events of every segment by key, each key's in partition order. */
function mergeSegments<T>(
  segments: readonly { byKey: Map<string, KeyedEvent<T>[]> }[],
): Map<string, KeyedEvent<T>[]> {
  if (segments.length === 1) return segments[0]!.byKey;
  const merged = new Map<string, KeyedEvent<T>[]>();
  for (const { byKey } of segments) {
    for (const [key, events] of byKey) {
      const list = merged.get(key);
      if (list) list.push(...events);
      else merged.set(key, [...events]);
    }
  }
  return merged;
}

/** A batch's raw records by offset: only the few an actor rejects are ever looked up. */
interface RecordsByOffset {
  get(offset: number): KafkaMessage | undefined;
}

/**
 * The records of a fetched batch by offset, found by binary search (a batch is in offset
 * order) rather than indexed into a Map: a Map of every record of every batch cost the hot
 * path its inserts and the garbage collector a table per batch.
 */
function recordsByOffset(messages: readonly KafkaMessage[]): RecordsByOffset {
  return {
    get(offset) {
      let low = 0;
      let high = messages.length - 1;
      while (low <= high) {
        const mid = (low + high) >>> 1;
        const at = Number(messages[mid]!.offset);
        if (at === offset) return messages[mid];
        if (at < offset) low = mid + 1;
        else high = mid - 1;
      }
      return undefined;
    },
  };
}
