/**
 * The runtime around one key's machine: a mailbox processed one batch at a time, the
 * partition offset applied last, the key's recent events for inspection, and persisted
 * snapshots. Only this object changes its machine's state (single writer per key).
 */
import type { AnyActorRef } from "xstate";
import type {
  ActorKind,
  ActorOutputs,
  ActorRejectionReason,
  KeyedEvent,
  KindAdapter,
} from "./actor_kinds.ts";
import type { EventClock } from "./event_clock.ts";
import type { PersistedActor } from "../messages/persisted_actor.ts";
import { EventHistory } from "./event_history.ts";
import { holdsNoReferences } from "./machine_restore.ts";

export type { PersistedActor };

export type Rejected<T> = { event: KeyedEvent<T>; reason: ActorRejectionReason; message: string };

export class KeyActor<T> {
  readonly key: string;
  readonly partition: number;
  readonly #adapter: KindAdapter<T>;
  #machine: AnyActorRef;
  #appliedOffset: number;
  readonly #history: EventHistory;
  #mailbox: KeyedEvent<T>[] = [];
  /**
   * Events applied since the last stored snapshot, kept only for a key under watch (one that
   * crashed before): with the snapshot they rebuild its state event by event. Keeping them
   * for every key would hold every event between two snapshots in the heap.
   */
  readonly #keepUnflushed: boolean;
  #unflushed: KeyedEvent<T>[] = [];
  #carried: ActorOutputs | null = null;
  #stopped = false;
  restarts: number;
  /** Changed since its last stored snapshot (a passivation candidate only when false). */
  dirty = false;
  lastActiveMs: number;

  constructor(
    adapter: KindAdapter<T>,
    key: string,
    partition: number,
    options: {
      historySize: number;
      nowMs: number;
      persisted?: PersistedActor;
      versionBase?: number;
      /** Keep the events since the last snapshot (a key that crashed before). */
      keepUnflushed?: boolean;
    },
  ) {
    this.#adapter = adapter;
    this.key = key;
    this.partition = partition;
    this.#keepUnflushed = options.keepUnflushed ?? false;
    this.#appliedOffset = options.persisted?.offset ?? -1;
    this.#history = new EventHistory(options.historySize, options.persisted?.history);
    this.restarts = options.persisted?.restarts ?? 0;
    this.lastActiveMs = options.nowMs;
    // Last: once spawned, the machine lives in its adapter's system until stop().
    this.#machine = adapter.spawn(key, options.persisted?.machine, options.versionBase);
    // A throwing machine is reported through its snapshot status (see drain); this observer
    // keeps XState from rethrowing the same error globally.
    this.#machine.subscribe({ error: () => {} });
  }

  get kind(): ActorKind {
    return this.#adapter.kind;
  }

  get appliedOffset(): number {
    return this.#appliedOffset;
  }

  get mailboxDepth(): number {
    return this.#mailbox.length;
  }

  /** Queues an event unless the key has already applied its offset (redelivery). */
  enqueue(event: KeyedEvent<T>): boolean {
    if (event.offset <= this.#appliedOffset) return false;
    this.#mailbox.push(event);
    return true;
  }

  /** Applies the queued events as one batch; returns the events the machine rejected. */
  drain(nowMs: number): Rejected<T>[] {
    const batch = this.#mailbox;
    if (batch.length === 0) return [];
    this.#mailbox = [];
    const rejections = this.#adapter.apply(this.#machine, batch);
    const status = this.#machine.getSnapshot().status;
    if (status === "error") {
      throw new ActorCrashedError(this.key, this.#machine.getSnapshot().error, batch);
    }
    this.#appliedOffset = batch[batch.length - 1]!.offset;
    if (this.#keepUnflushed) { for (const e of batch) this.#unflushed.push(e); }
    this.lastActiveMs = nowMs;
    this.dirty = true;
    for (let i = Math.max(0, batch.length - this.#history.capacity); i < batch.length; i++) {
      this.#history.push(this.#adapter.summarize(batch[i]!));
    }
    return rejections.map((r) => ({
      event: batch[r.index]!,
      reason: r.reason,
      message: r.message,
    }));
  }

  /** Delivers a partition clock advance (the actor closes what is due). */
  advance(clock: EventClock): void {
    this.#adapter.advance(this.#machine, clock);
    this.dirty = true;
  }

  /** Operator reset: empty state, versions continuing from `versionBase`. */
  reset(versionBase: number): void {
    this.#adapter.reset(this.#machine, versionBase);
    this.#history.clear();
    this.#unflushed = [];
    this.dirty = true;
  }

  /** A window closed since the last flush. */
  get windowClosed(): boolean {
    return this.#adapter.windowClosed(this.#machine);
  }

  /** The partition clock value at which this actor next has a bar to close, or null. */
  nextCloseAt(): number | null {
    return this.#adapter.nextCloseAt(this.#machine);
  }

  /** Takes the changes since the last collect as sink writes. */
  collect(): ActorOutputs {
    const out = this.#adapter.collect(this.#machine, this.key);
    const carried = this.#carried;
    if (carried === null) return out;
    this.#carried = null;
    // Carried writes come first: anything collected now is newer for the same key.
    return {
      projections: [...carried.projections, ...out.projections],
      barRows: [...carried.barRows, ...out.barRows],
      curveRows: [...carried.curveRows, ...out.curveRows],
      messages: [...carried.messages, ...out.messages],
    };
  }

  /** Hands writes to the next flush (a replay's rebuilt results, filtered). */
  carry(outputs: ActorOutputs): void {
    this.#carried = outputs;
    this.dirty = true;
  }

  /** Events applied since the last stored snapshot (to rebuild after a crash), if kept. */
  get unflushed(): readonly KeyedEvent<T>[] | null {
    return this.#keepUnflushed ? this.#unflushed : null;
  }

  /** The snapshot was stored: the events before it are no longer needed for a rebuild. */
  snapshotted(): void {
    this.#unflushed = [];
    this.dirty = false;
  }

  persist(nowMs: number): PersistedActor {
    return {
      kind: this.kind,
      key: this.key,
      partition: this.partition,
      offset: this.#appliedOffset,
      machine: persistedSnapshot(this.#machine),
      history: this.#history.toStored(),
      restarts: this.restarts,
      saved_at_ms: nowMs,
    };
  }

  /** What an operator sees: live state, machine value, offsets, clock, history. */
  inspect(): Record<string, unknown> {
    const snapshot = this.#machine.getSnapshot();
    return {
      kind: this.kind,
      key: this.key,
      partition: this.partition,
      status: "live",
      state: snapshot.value,
      context: snapshot.context,
      applied_offset: this.#appliedOffset,
      event_time_clock_ms: this.#adapter.clockMs(this.#machine),
      mailbox_depth: this.#mailbox.length,
      restarts: this.restarts,
      last_events: this.#history.toArray(),
    };
  }

  maxVersion(): number {
    return this.#adapter.maxVersion(this.#machine);
  }

  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#adapter.stop(this.#machine);
  }

  get stopped(): boolean {
    return this.#stopped;
  }
}

/**
 * The machine's persisted snapshot, as XState's `getPersistedSnapshot` gives it. XState's own
 * walks the whole context for actor references on every call (5-7% of the CPU of a node
 * storing thousands of snapshots a second); a machine with no children and no history
 * states holds none, so its context is taken as it is. The caller serialises it at once.
 */
export function persistedSnapshot(machine: AnyActorRef): unknown {
  const snapshot = machine.getSnapshot();
  if (!holdsNoReferences(snapshot)) return machine.getPersistedSnapshot();
  return {
    status: snapshot.status,
    value: snapshot.value,
    historyValue: {},
    context: snapshot.context,
    children: {},
    ...(snapshot.output !== undefined ? { output: snapshot.output } : {}),
    ...(snapshot.error !== undefined ? { error: snapshot.error } : {}),
  };
}

/** A machine threw while applying a batch: the actor must be rebuilt by its supervisor. */
export class ActorCrashedError<T> extends Error {
  readonly key: string;
  readonly batch: KeyedEvent<T>[];
  constructor(key: string, cause: unknown, batch: KeyedEvent<T>[]) {
    super(`actor ${key} crashed: ${cause instanceof Error ? cause.message : String(cause)}`, {
      cause,
    });
    this.name = "ActorCrashedError";
    this.key = key;
    this.batch = batch;
  }
}
