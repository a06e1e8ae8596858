/**
 * One owned partition of a normalized topic: its key actors (spawned, revived from
 * snapshots, passivated), the offset it has processed, and the writes its next flush owes.
 * A crashing actor is rebuilt from its snapshot and its unflushed events; an event that
 * crashes it every time is a poison event and goes to the DLQ.
 */
import type { KafkaMessage } from "kafkajs";
import type { z } from "zod";
import type { ActorOutputs, KeyedEvent, KindAdapter } from "../actors/actor_kinds.ts";
import { ActorCrashedError, KeyActor, type PersistedActor } from "../actors/key_actor.ts";
import { buildDlqRecord, type DlqRecord } from "../messages/dlq_record.ts";
import { decodeJson } from "../messages/decode.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import type { ActorStore } from "../stores/actor_store.ts";
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
}

/** The partition can no longer be trusted to continue; its parent must restart it. */
export class PartitionEscalation extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, { cause });
    this.name = "PartitionEscalation";
  }
}

const STAGE = "aggregate";
/** Actors collected between two yields to the event loop while a flush is planned. */
const PLAN_CHUNK = 250;

export class PartitionSupervisor<T> {
  readonly topic: string;
  readonly partition: number;
  readonly epoch: number;
  readonly #o: PartitionOptions<T>;
  readonly #actors = new Map<string, KeyActor<T>>();
  /** Passivated keys that still owe a quiet close, with the wall-clock time it is due. */
  readonly #wakeups = new Map<string, number>();
  readonly #restarts = new RestartIntensity({ maxRestarts: 10, windowMs: 60_000 });
  #dlq: DlqRecord[] = [];
  #processedOffset = -1;
  #flushedOffset = -1;
  #alive = true;
  /** Keys being replayed: their live events wait in #held until the replay swaps actors. */
  #holding: ((key: string) => boolean) | null = null;
  #held = new Map<string, { events: KeyedEvent<T>[]; raw: KafkaMessage[] }>();
  /** Resolves once the batch in progress is done (revoke waits for it). */
  #inFlight: Promise<void> = Promise.resolve();

  constructor(options: PartitionOptions<T>) {
    this.#o = options;
    this.topic = options.topic;
    this.partition = options.partition;
    this.epoch = options.epoch;
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
    const byKey = new Map<string, KeyedEvent<T>[]>();
    const raw = new Map<number, KafkaMessage>();
    for (const m of messages) {
      const offset = Number(m.offset);
      const decoded = decodeJson(this.#o.schema, m.value, this.#o.fastCheck);
      if (!decoded.ok) {
        this.#toDlq(m, "invalid_payload", decoded.message, now);
        continue;
      }
      raw.set(offset, m);
      const key = this.#o.keyOf(decoded.value);
      const event = { offset, appendTimeMs: Number(m.timestamp), value: decoded.value };
      const list = byKey.get(key);
      if (list) list.push(event);
      else byKey.set(key, [event]);
    }
    if (this.#holding) this.#holdBack(byKey, raw);
    await this.#revive([...byKey.keys()].filter((k) => !this.#actors.has(k)), now);
    if (!this.#alive) return;

    const latency = metrics.processingLatency.labels(STAGE);
    let applied = 0;
    let closed = false;
    for (const [key, events] of byKey) {
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
      applied += queued;
      closed ||= actor.windowClosed;
    }
    if (closed) this.#o.onWindowClosed?.();
    const done = this.#o.now();
    for (const events of byKey.values()) {
      for (const e of events) latency.observe(Math.max(0, done - e.appendTimeMs));
    }
    metrics.events.labels(STAGE, "applied").inc(applied);
    this.#processedOffset = Number(messages[messages.length - 1]!.offset);
  }

  #holdBack(byKey: Map<string, KeyedEvent<T>[]>, raw: Map<number, KafkaMessage>): void {
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
      this.#holding = match;
      return this.#processedOffset;
    });
  }

  /**
   * Ends a hold: installs rebuilt actors (when given) in place of the live ones, then applies
   * the events held meanwhile to whichever actor now holds each key.
   */
  release(rebuilt: Map<string, KeyActor<T>> | null): Promise<void> {
    return this.#serial(async () => {
      const now = this.#o.now();
      this.#holding = null;
      for (const [key, actor] of rebuilt ?? []) {
        this.#actors.get(key)?.stop();
        this.#actors.set(key, actor);
        this.#wakeups.delete(key);
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
          await this.#recover(key, err.batch as KeyedEvent<T>[], rawByOffset, now);
        }
      }
    });
  }

  /** A new actor outside the partition's registry (a replay builds its keys in these). */
  detachedActor(key: string, versionBase: number): KeyActor<T> {
    return new KeyActor(this.#o.adapter, key, this.partition, {
      historySize: this.#o.historySize,
      nowMs: this.#o.now(),
      versionBase,
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

  async #revive(keys: string[], now: number): Promise<void> {
    if (keys.length === 0) return;
    const persisted = await this.#o.store.load(this.kind, keys);
    for (const key of keys) this.#spawn(key, persisted.get(key), now);
  }

  #spawn(key: string, persisted: PersistedActor | undefined, now: number): KeyActor<T> {
    const actor = new KeyActor(this.#o.adapter, key, this.partition, {
      historySize: this.#o.historySize,
      nowMs: now,
      ...(persisted ? { persisted } : {}),
    });
    this.#actors.set(key, actor);
    this.#wakeups.delete(key);
    return actor;
  }

  #reportRejections(
    rejected: { event: KeyedEvent<T>; reason: "late_event"; message: string }[],
    raw: Map<number, KafkaMessage>,
    now: number,
  ): void {
    for (const r of rejected) {
      metrics.lateEvents.inc();
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
    raw: Map<number, KafkaMessage>,
    now: number,
  ): Promise<void> {
    const crashed = this.#actors.get(key)!;
    const replayLog = [...crashed.unflushed];
    const restarts = crashed.restarts + 1;
    crashed.stop();
    metrics.actorRestarts.labels("actor").inc();
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
        const actor = this.#spawn(key, stored, now);
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
    // by the last attempt may be a stopped, crashed one.
    this.#actors.get(key)?.stop();
    const actor = this.#spawn(key, stored, now);
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
   * every version it issued, so version-guarded sinks accept what comes next. Returns the
   * new version base, or undefined when the key has neither a live actor nor a snapshot.
   */
  async reset(key: string): Promise<number | undefined> {
    const now = this.#o.now();
    if (!this.#actors.has(key)) {
      const stored = (await this.#o.store.load(this.kind, [key])).get(key);
      if (!stored) return undefined;
      this.#spawn(key, stored, now);
    }
    const actor = this.#actors.get(key)!;
    const versionBase = actor.maxVersion() + 1;
    actor.reset(versionBase);
    this.#wakeups.delete(key);
    return versionBase;
  }

  /** Delivers the wall clock to actors whose quiet close is due (reviving passivated ones). */
  tick(now: number): Promise<void> {
    return this.#serial(async () => {
      const due = [...this.#wakeups].filter(([, at]) => at <= now).map(([k]) => k);
      if (due.length > 0) await this.#revive(due, now);
      for (const actor of this.#actors.values()) {
        const at = actor.wakeAt();
        if (at !== null && at <= now) actor.tick(now);
      }
    });
  }

  /**
   * Captures what the next flush writes: every dirty actor's changes and snapshot, the DLQ
   * records owed, and the offset that becomes committable once all of it is acknowledged.
   */
  async plan(options: { snapshot: boolean }): Promise<PartitionFlushPlan> {
    const now = this.#o.now();
    // Captured first: everything at or below this offset is in the actors collected below
    // (events applied while this plan yields only add to snapshots, keyed by their offsets).
    // Only a plan with snapshots may commit: the offset must be covered by stored state.
    const commitOffset = options.snapshot && this.#processedOffset > this.#flushedOffset
      ? this.#processedOffset + 1
      : null;
    const dlq = this.#dlq;
    this.#dlq = [];
    const outputs: ActorOutputs = { projections: [], barRows: [], curveRows: [], messages: [] };
    const snapshots: { key: string; value: string }[] = [];
    const flushedKeys: string[] = [];
    const dirty = [...this.#actors.values()].filter((a) => a.dirty);
    for (let i = 0; i < dirty.length; i++) {
      // Serialising thousands of snapshots at once would stall every partition: yield.
      if (i > 0 && i % PLAN_CHUNK === 0) await new Promise((r) => setTimeout(r, 0));
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
    return {
      topic: this.topic,
      partition: this.partition,
      epoch: this.epoch,
      commitOffset,
      outputs,
      snapshots,
      dlq,
      flushedKeys,
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
        const wake = actor.wakeAt();
        if (wake !== null) this.#wakeups.set(actor.key, wake);
        actor.stop();
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
    this.#wakeups.clear();
  }

  /** Waits for the batch in progress, if any. */
  async idle(): Promise<void> {
    await this.#inFlight;
  }
}
