/**
 * What differs between the two actor kinds, behind one narrow interface so the runtime,
 * the partition supervisor and the flush path stay kind-agnostic: how to create and restore
 * a machine, how to hand it a batch, and what its changes become in each sink.
 */
import { type AnyActorRef, createActor } from "xstate";
import type { Bar } from "../messages/bar.ts";
import type { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import type { CurveSnapshot, LatestPrice } from "../messages/projections.ts";
import {
  type BarState,
  barVersion,
  barVwap,
  findBar,
  type InstrumentContext,
  type InstrumentParams,
  latestVersion,
  nextCloseAt,
  takeChanges,
} from "./instrument_aggregate.ts";
import { instrumentMachine } from "./instrument_machine.ts";
import {
  type CurveContext,
  curveVersion,
  snapshotPoints,
  takeCurveChanges,
} from "./curve_aggregate.ts";
import { curveMachine } from "./curve_machine.ts";
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

export interface KindAdapter<T> {
  kind: ActorKind;
  /** Creates a fresh machine actor or restores one from a persisted snapshot. */
  spawn(key: string, persisted?: unknown, versionBase?: number): AnyActorRef;
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

function emptyOutputs(): ActorOutputs {
  return { projections: [], barRows: [], curveRows: [], messages: [] };
}

function secondsOf(ms: number): number {
  return Math.floor(ms / 1000);
}

export function barMessage(ctx: InstrumentContext, resolution: string, bar: BarState): Bar {
  return {
    instrument_id: ctx.instrumentId,
    resolution,
    start_ms: bar.start_ms,
    end_ms: bar.end_ms,
    open: bar.open,
    high: bar.high,
    low: bar.low,
    close: bar.close,
    volume: bar.volume,
    vwap: barVwap(bar),
    count: bar.count,
    final: bar.final,
    version: barVersion(ctx, bar),
  };
}

export function instrumentAdapter(params: InstrumentParams): KindAdapter<NormalizedTick> {
  return {
    kind: "instrument",
    spawn(key, persisted, versionBase) {
      const input = { instrumentId: key, params, versionBase: versionBase ?? 0 };
      const actor = persisted === undefined
        ? createActor(instrumentMachine, { input })
        : createActor(instrumentMachine, { input, snapshot: persisted as never });
      return actor.start();
    },
    apply(actor, events) {
      actor.send({
        type: "EVENTS",
        inputs: events.map((e) => ({ tick: e.value, clock: e.clock })),
      });
      return (actor.getSnapshot().context as InstrumentContext).rejected;
    },
    collect(actor, key) {
      const ctx = actor.getSnapshot().context as InstrumentContext;
      const out = emptyOutputs();
      const changes = takeChanges(ctx);
      for (const barKey of changes.bars) {
        const bar = findBar(ctx, barKey);
        if (!bar) continue;
        const resolution = barKey.slice(0, barKey.indexOf("|"));
        const message = barMessage(ctx, resolution, bar);
        out.barRows.push({
          ...message,
          start: secondsOf(bar.start_ms),
          final: bar.final ? 1 : 0,
          event_time: secondsOf(bar.close_t),
        });
        if (bar.final) out.messages.push({ topic: "bars", key, value: JSON.stringify(message) });
        const newest = ctx.bars[resolution]?.at(-1);
        if (newest === bar) {
          out.projections.push({
            key: `projection:bar:${resolution}:${key}`,
            order: message.start_ms,
            version: message.version,
            value: JSON.stringify(message),
          });
        }
      }
      if (changes.latest && ctx.latest) {
        const latest: LatestPrice = {
          instrument_id: key,
          ...ctx.latest,
          version: latestVersion(ctx),
        };
        const value = JSON.stringify(latest);
        out.projections.push({
          key: `projection:latest:${key}`,
          order: 0,
          version: latest.version,
          value,
        });
        out.messages.push({ topic: "latestPrice", key, value });
      }
      return out;
    },
    nextCloseAt(actor) {
      return nextCloseAt(actor.getSnapshot().context as InstrumentContext);
    },
    windowClosed(actor) {
      return (actor.getSnapshot().context as InstrumentContext).closedSinceFlush === true;
    },
    advance(actor, clock) {
      actor.send({ type: "CLOCK", clock });
    },
    reset(actor, versionBase) {
      actor.send({ type: "RESET", versionBase });
    },
    maxVersion(actor) {
      const ctx = actor.getSnapshot().context as InstrumentContext;
      let max = latestVersion(ctx);
      for (const list of Object.values(ctx.bars)) {
        for (const bar of list) max = Math.max(max, barVersion(ctx, bar));
      }
      // Bars already pruned had at most 2 * applied + 1 above the base.
      return Math.max(max, ctx.versionBase + 2 * ctx.applied + 1);
    },
    clockMs(actor) {
      return (actor.getSnapshot().context as InstrumentContext).clockMs;
    },
    summarize(event) {
      const t = event.value;
      return {
        offset: event.offset,
        event_id: t.event_id,
        event_time_ms: t.event_time_ms,
        price: t.price,
        size: t.size,
      };
    },
  };
}

export function curveAdapter(): KindAdapter<NormalizedCurvePoint> {
  return {
    kind: "curve",
    spawn(key, persisted, versionBase) {
      const input = { curveId: key, versionBase: versionBase ?? 0 };
      const actor = persisted === undefined
        ? createActor(curveMachine, { input })
        : createActor(curveMachine, { input, snapshot: persisted as never });
      return actor.start();
    },
    apply(actor, events) {
      actor.send({ type: "EVENTS", points: events.map((e) => e.value) });
      // Points of an as_of older than the dates the actor keeps: stale_as_of in the DLQ.
      return (actor.getSnapshot().context as CurveContext).rejected;
    },
    collect(actor, key) {
      const ctx = actor.getSnapshot().context as CurveContext;
      const out = emptyOutputs();
      const changes = takeCurveChanges(ctx);
      for (const row of changes.rows) {
        out.curveRows.push({
          curve_id: key,
          as_of: row.as_of,
          tenor: row.tenor,
          price: row.price,
          version: row.version,
          event_time: secondsOf(row.event_time_ms),
          event_time_ms: row.event_time_ms,
          event_id: row.event_id,
        });
      }
      if (changes.snapshot && ctx.asOf !== null) {
        const snapshot: CurveSnapshot = {
          curve_id: key,
          as_of: ctx.asOf,
          points: snapshotPoints(ctx),
          version: ctx.snapshotVersion,
        };
        const value = JSON.stringify(snapshot);
        out.projections.push({
          key: `projection:curve:${key}`,
          order: 0,
          version: snapshot.version,
          value,
        });
        out.messages.push({ topic: "curveSnapshot", key, value });
      }
      return out;
    },
    nextCloseAt() {
      return null;
    },
    windowClosed() {
      return false;
    },
    advance() {},
    reset(actor, versionBase) {
      actor.send({ type: "RESET", versionBase });
    },
    maxVersion(actor) {
      return curveVersion(actor.getSnapshot().context as CurveContext);
    },
    clockMs(actor) {
      const ctx = actor.getSnapshot().context as CurveContext;
      let max: number | null = null;
      for (const tenors of Object.values(ctx.asOfs)) {
        for (const p of Object.values(tenors)) {
          if (max === null || p.event_time_ms > max) max = p.event_time_ms;
        }
      }
      return max;
    },
    summarize(event) {
      const p = event.value;
      return {
        offset: event.offset,
        event_id: p.event_id,
        event_time_ms: p.event_time_ms,
        as_of: p.as_of,
        tenor: p.tenor,
        price: p.price,
      };
    },
  };
}
