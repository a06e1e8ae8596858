/**
 * The instrument actor as an XState v5 machine. Its logic lives in aggregate.ts;
 * the machine adds the lifecycle (empty -> open <-> closed) and is what the runtime
 * persists and restores (XState persisted snapshots). Time comes only from the partition's
 * event-time clock, with each event and with CLOCK advances: no wall clock.
 *
 * Only the machine changes its context. What the runtime needs back it emits, synchronously
 * within `send`: the events of a batch it rejected, and on COLLECT the changes since the
 * last collect (which it then forgets).
 */
import { assertEvent, enqueueActions, setup } from "xstate";
import type { EventClock } from "../../event_clock.ts";
import {
  advanceClock,
  allBarsFinal,
  applyTicks,
  type ChangedBar,
  initialInstrumentContext,
  type InstrumentContext,
  type InstrumentParams,
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
