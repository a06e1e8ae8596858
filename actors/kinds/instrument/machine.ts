/**
 * The instrument actor as an XState v5 machine, and its adapter: how the runtime drives it
 * (KindAdapter) and what a change of its bars and latest price becomes in each sink. Its
 * logic lives in aggregate.ts; the machine adds the lifecycle (empty -> open <-> closed) and
 * is what the runtime persists and restores (XState persisted snapshots). Time comes only
 * from the partition's event-time clock, with each event and with CLOCK advances: no wall
 * clock.
 *
 * Only the machine changes its context. What the runtime needs back it emits, synchronously
 * within `send`: the events of a batch it rejected, and on COLLECT the changes since the
 * last collect (which it then forgets).
 */
import { assertEvent, enqueueActions, setup } from "xstate";
import type { Bar } from "../../../messages/bar.ts";
import type { NormalizedTick } from "../../../messages/normalized_tick.ts";
import type { LatestPrice } from "../../../messages/projections.ts";
import { emptyOutputs, type KindAdapter, publishLatest, secondsOf } from "../../actor_kinds.ts";
import { MachineHost } from "../../machine_host.ts";
import { withQuickRestore } from "../../machine_restore.ts";
import type { EventClock } from "../../event_clock.ts";
import {
  advanceClock,
  allBarsFinal,
  applyTicks,
  type BarState,
  barVersion,
  barVwap,
  type ChangedBar,
  initialInstrumentContext,
  type InstrumentContext,
  type InstrumentParams,
  latestVersion,
  nextCloseAt,
  type Rejection,
  takeChanges,
  type TickInput,
} from "./aggregate.ts";

export type InstrumentEvent =
  /** A batch of ticks for this instrument, in partition order, each with its clock. */
  | { type: "EVENTS"; inputs: readonly TickInput[] }
  /** The partition's clock moved (or every source went idle): close what is due. */
  | { type: "CLOCK"; clock: EventClock }
  /** Operator reset: forget everything but keep versions growing. */
  | { type: "RESET"; versionBase: number }
  /** A flush takes the changes since the last one (emitted as `changes`). */
  | { type: "COLLECT" };

export type InstrumentEmitted =
  /** Events of the batch just sent that were not applied (index within the batch). */
  | { type: "rejected"; rejections: Rejection[] }
  /** What changed since the last COLLECT. */
  | { type: "changes"; bars: ChangedBar[]; latest: boolean };

export interface InstrumentInput {
  instrumentId: string;
  params: InstrumentParams;
  versionBase?: number;
}

export const instrumentMachine = setup({
  types: {
    context: {} as InstrumentContext,
    events: {} as InstrumentEvent,
    input: {} as InstrumentInput,
    emitted: {} as InstrumentEmitted,
  },
  actions: {
    // The context belongs to this actor alone (single writer), so the reducer updates it in
    // place: copying bar lists per event would cost more than the rest of the work.
    apply: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "EVENTS");
      const rejections = applyTicks(context, event.inputs);
      if (rejections.length > 0) enqueue.emit({ type: "rejected", rejections });
    }),
    collect: enqueueActions(({ context, enqueue }) => {
      enqueue.emit({ type: "changes", ...takeChanges(context) });
    }),
    advance: ({ context, event }) => {
      assertEvent(event, "CLOCK");
      advanceClock(context, event.clock);
    },
    reset: ({ context, event }) => {
      assertEvent(event, "RESET");
      Object.assign(
        context,
        initialInstrumentContext(context.instrumentId, context.params, event.versionBase),
      );
    },
  },
  guards: {
    allBarsFinal: ({ context }) => allBarsFinal(context),
    hasOpenBar: ({ context }) => !allBarsFinal(context),
  },
}).createMachine({
  id: "instrument",
  context: ({ input }) =>
    initialInstrumentContext(input.instrumentId, input.params, input.versionBase ?? 0),
  initial: "empty",
  // Eventless guards decide open / closed after each event: a guard on the event's own
  // transition would see the context before its action ran, and a transient state between
  // them costs three times as much per event (measured).
  states: {
    empty: {
      on: { EVENTS: { target: "open", actions: "apply" } },
    },
    open: {
      always: { guard: "allBarsFinal", target: "closed" },
      on: {
        EVENTS: { actions: "apply" },
        CLOCK: { actions: "advance" },
      },
    },
    closed: {
      // A correction after quiet close keeps every bar final: the actor stays closed.
      always: { guard: "hasOpenBar", target: "open" },
      on: {
        EVENTS: { actions: "apply" },
        CLOCK: { actions: "advance" },
      },
    },
  },
  on: {
    RESET: { target: ".empty", actions: "reset" },
    COLLECT: { actions: "collect" },
  },
});

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

/** `machine`: this one, or (in tests) this one with actions replaced through `provide`. */
export function instrumentAdapter(
  params: InstrumentParams,
  machine: typeof instrumentMachine = instrumentMachine,
): KindAdapter<NormalizedTick> {
  // A machine emits within `send`, so what the last send emitted is all one slot needs.
  let rejections = NONE;
  let changes: Changes | null = null;
  const restorable = withQuickRestore(machine);
  const host = new MachineHost();
  const onEmitted = (emitted: InstrumentEmitted) => {
    if (emitted.type === "rejected") rejections = emitted.rejections;
    else changes = emitted;
  };
  return {
    kind: "instrument",
    spawn(key, persisted, versionBase) {
      const input = { instrumentId: key, params, versionBase: versionBase ?? 0 };
      return host.startMachine(restorable, input, persisted, onEmitted);
    },
    stop: (actor) => host.stop(actor),
    machines: () => host.live,
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
        publishLatest(out, {
          projectionKey: `projection:latest:${key}`,
          topic: "latestPrice",
          key,
          version: latest.version,
          value: latest,
        });
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
