/**
 * The instrument actor as an XState v5 machine. Its logic lives in instrument_aggregate.ts;
 * the machine adds the lifecycle (empty -> active <-> quiet) and is what the runtime
 * persists and restores (XState persisted snapshots).
 */
import { assertEvent, setup } from "xstate";
import {
  allBarsFinal,
  applyTicks,
  closeQuiet,
  initialInstrumentContext,
  type InstrumentContext,
  type InstrumentParams,
  quietCloseDue,
  type TickInput,
} from "./instrument_aggregate.ts";

export type InstrumentEvent =
  /** A batch of ticks for this instrument, in partition order. */
  | { type: "EVENTS"; inputs: readonly TickInput[] }
  /** The wall clock, for quiet close of instruments that stopped trading. */
  | { type: "WALL_CLOCK"; nowMs: number }
  /** Operator reset: forget everything but keep versions growing. */
  | { type: "RESET"; versionBase: number };

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
  },
  actions: {
    // The context belongs to this actor alone (single writer), so the reducer updates it in
    // place: copying bar lists per event would cost more than the rest of the work.
    apply: ({ context, event }) => {
      assertEvent(event, "EVENTS");
      applyTicks(context, event.inputs);
    },
    closeQuiet: ({ context, event }) => {
      assertEvent(event, "WALL_CLOCK");
      closeQuiet(context, event.nowMs);
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
    quietCloseDue: ({ context, event }) => {
      assertEvent(event, "WALL_CLOCK");
      return quietCloseDue(context, event.nowMs);
    },
    allBarsFinal: ({ context }) => allBarsFinal(context),
  },
}).createMachine({
  id: "instrument",
  context: ({ input }) =>
    initialInstrumentContext(input.instrumentId, input.params, input.versionBase ?? 0),
  initial: "empty",
  states: {
    empty: {
      on: { EVENTS: { target: "active", actions: "apply" } },
    },
    active: {
      on: {
        EVENTS: { actions: "apply" },
        WALL_CLOCK: [
          { guard: "quietCloseDue", target: "settling", actions: "closeQuiet" },
          // A correction after quiet close leaves every bar final: quiet again.
          { guard: "allBarsFinal", target: "quiet" },
        ],
      },
    },
    settling: {
      always: [{ guard: "allBarsFinal", target: "quiet" }, { target: "active" }],
    },
    quiet: {
      on: { EVENTS: { target: "active", actions: "apply" } },
    },
  },
  on: {
    RESET: { target: ".empty", actions: "reset" },
  },
});
