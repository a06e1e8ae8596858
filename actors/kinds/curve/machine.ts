/** The curve actor as an XState v5 machine (logic in aggregate.ts). */
import { assertEvent, setup } from "xstate";
import type { NormalizedCurvePoint } from "../../../messages/normalized_curve_point.ts";
import { applyPoints, type CurveContext, initialCurveContext } from "./aggregate.ts";

export type CurveEvent =
  | { type: "EVENTS"; points: readonly NormalizedCurvePoint[] }
  | { type: "RESET"; versionBase: number };

export interface CurveInput {
  curveId: string;
  versionBase?: number;
  /** The newest as_of dates kept (default DEFAULT_KEEP_AS_OFS); older ones are stale_as_of. */
  keepAsOfs?: number;
}

export const curveMachine = setup({
  types: { context: {} as CurveContext, events: {} as CurveEvent, input: {} as CurveInput },
  actions: {
    // Single writer: the reducer updates the actor's own context in place; the points it
    // rejects are in context.rejected until the next batch.
    apply: ({ context, event }) => {
      assertEvent(event, "EVENTS");
      applyPoints(context, event.points);
    },
    reset: ({ context, event }) => {
      assertEvent(event, "RESET");
      Object.assign(
        context,
        initialCurveContext(context.curveId, event.versionBase, context.keepAsOfs),
      );
    },
  },
}).createMachine({
  id: "curve",
  context: ({ input }) =>
    initialCurveContext(input.curveId, input.versionBase ?? 0, input.keepAsOfs),
  initial: "empty",
  states: {
    empty: { on: { EVENTS: { target: "tracking", actions: "apply" } } },
    tracking: { on: { EVENTS: { actions: "apply" } } },
  },
  on: { RESET: { target: ".empty", actions: "reset" } },
});
