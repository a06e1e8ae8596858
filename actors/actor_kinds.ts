/**
 * What every actor kind has in common, behind one narrow interface so the runtime, the
 * partition supervisor and the flush path stay kind-agnostic: how to create and restore a
 * machine, how to hand it a batch, and what its changes become in each sink. Each kind
 * implements it in its own folder (actors/kinds/<kind>/).
 */
import type { AnyActorRef } from "xstate";
import type { EventClock } from "./event_clock.ts";

/** A kind's name (the kinds themselves: actors/kinds/registry.ts). */
export type ActorKind = string;

/** A decoded event with its position in the partition. */
export interface KeyedEvent<T> {
  offset: number;
  /** Kafka append time (ms) of the record, for the latency histogram. */
  appendTimeMs: number;
  /** The partition's event-time clock at this offset. */
  clock: EventClock;
  value: T;
}

/** The DLQ reasons an actor rejects an event for (stage `aggregate`). */
export type ActorRejectionReason = "late_event" | "stale_as_of";

/** An event of a batch that an actor rejected: its index in the batch and why. */
export interface ActorRejection {
  index: number;
  reason: ActorRejectionReason;
  message: string;
}

/** What one flush of one actor writes. */
export interface ActorOutputs {
  /**
   * Redis projections: key suffix (after the prefix), JSON value, and what guards the
   * write: (order, version) must grow; order is a bar's start_ms, 0 for other projections.
   */
  projections: { key: string; order: number; version: number; value: string }[];
  barRows: Record<string, unknown>[];
  curveRows: Record<string, unknown>[];
  /** Kafka records: topic role, message key, JSON value. */
  messages: { topic: "bars" | "latestPrice" | "curveSnapshot"; key: string; value: string }[];
}

/**
 * A kind's machine behind the runtime. The machine owns its context: an adapter only sends
 * it events (EVENTS, CLOCK, RESET, COLLECT) and reads what it emits or holds, never writes.
 */
export interface KindAdapter<T> {
  kind: ActorKind;
  /** Creates a fresh machine actor or restores one from a persisted snapshot. */
  spawn(key: string, persisted?: unknown, versionBase?: number): AnyActorRef;
  /** Stops an actor it spawned (once), releasing it. */
  stop(actor: AnyActorRef): void;
  /** Actors spawned and not yet stopped (each live KeyActor holds one). */
  machines(): number;
  /** Sends a batch; returns indexes of rejected events with reasons. */
  apply(actor: AnyActorRef, events: readonly KeyedEvent<T>[]): ActorRejection[];
  /** Takes the actor's changes since the last flush and turns them into sink writes. */
  collect(actor: AnyActorRef, key: string): ActorOutputs;
  /** The partition clock value at which the actor has something to close, or null. */
  nextCloseAt(actor: AnyActorRef): number | null;
  /** True when a window closed since the last flush (final bars are flushed early). */
  windowClosed(actor: AnyActorRef): boolean;
  /** Delivers a partition clock advance (finality and quiet close). */
  advance(actor: AnyActorRef, clock: EventClock): void;
  /** Resets the machine to empty, issuing versions from `versionBase` on. */
  reset(actor: AnyActorRef, versionBase: number): void;
  /** The highest version this actor has issued (a reset continues above it). */
  maxVersion(actor: AnyActorRef): number;
  /** The event-time clock, for inspection. */
  clockMs(actor: AnyActorRef): number | null;
  /** A compact summary of an event for the per-key history. */
  summarize(event: KeyedEvent<T>): Record<string, unknown>;
}

/** No writes (an adapter fills what its actor changed). */
export function emptyOutputs(): ActorOutputs {
  return { projections: [], barRows: [], curveRows: [], messages: [] };
}

/**
 * A latest-value projection that is also published as it is (latest price, curve snapshot):
 * one serialisation for the Redis write and the Kafka message.
 */
export function publishLatest(
  out: ActorOutputs,
  write: {
    projectionKey: string;
    topic: ActorOutputs["messages"][number]["topic"];
    key: string;
    version: number;
    value: unknown;
  },
): void {
  const value = JSON.stringify(write.value);
  out.projections.push({ key: write.projectionKey, order: 0, version: write.version, value });
  out.messages.push({ topic: write.topic, key: write.key, value });
}

/** Epoch milliseconds as the whole seconds of a ClickHouse DateTime. */
export function secondsOf(ms: number): number {
  return Math.floor(ms / 1000);
}
