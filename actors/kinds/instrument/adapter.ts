/**
 * The instrument kind's adapter: its machine behind the KindAdapter interface, and what a
 * change of its bars and latest price becomes in each sink.
 */
import { createActor } from "xstate";
import type { Bar } from "../../../messages/bar.ts";
import type { NormalizedTick } from "../../../messages/normalized_tick.ts";
import type { LatestPrice } from "../../../messages/projections.ts";
import { emptyOutputs, type KindAdapter, secondsOf } from "../../actor_kinds.ts";
import {
  type BarState,
  barVersion,
  barVwap,
  type ChangedBar,
  type InstrumentContext,
  type InstrumentParams,
  latestVersion,
  nextCloseAt,
  type Rejection,
} from "./aggregate.ts";
import { type InstrumentEmitted, instrumentMachine } from "./machine.ts";

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

type Changes = { bars: ChangedBar[]; latest: boolean };
const NONE: Rejection[] = [];
const NO_CHANGES: Changes = { bars: [], latest: false };

export function instrumentAdapter(params: InstrumentParams): KindAdapter<NormalizedTick> {
  // A machine emits within `send`, so what the last send emitted is all one slot needs.
  let rejections = NONE;
  let changes: Changes | null = null;
  const onEmitted = (emitted: InstrumentEmitted) => {
    if (emitted.type === "rejected") rejections = emitted.rejections;
    else changes = emitted;
  };
  return {
    kind: "instrument",
    spawn(key, persisted, versionBase) {
      const input = { instrumentId: key, params, versionBase: versionBase ?? 0 };
      const actor = persisted === undefined
        ? createActor(instrumentMachine, { input })
        : createActor(instrumentMachine, { input, snapshot: persisted as never });
      actor.on("*", onEmitted);
      return actor.start();
    },
    apply(actor, events) {
      rejections = NONE;
      actor.send({
        type: "EVENTS",
        inputs: events.map((e) => ({ tick: e.value, clock: e.clock })),
      });
      return rejections;
    },
    collect(actor, key) {
      changes = null;
      actor.send({ type: "COLLECT" });
      // (Set by onEmitted during the send: TypeScript cannot see that.)
      const taken = (changes as Changes | null) ?? NO_CHANGES;
      const ctx = actor.getSnapshot().context as InstrumentContext;
      const out = emptyOutputs();
      for (const { resolution, bar } of taken.bars) {
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
      if (taken.latest && ctx.latest) {
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
