/**
 * The curve actor as an XState v5 machine (logic in aggregate.ts). Only the machine changes
 * its context; what the runtime needs back it emits within `send`: the points of a batch it
 * rejected, and on COLLECT the changes since the last collect (which it then forgets).
 */
import { assertEvent, enqueueActions, setup } from "xstate";
import type { NormalizedCurvePoint } from "../../../messages/normalized_curve_point.ts";
import {
  applyPoints,
  type CurveContext,
  type CurveRejection,
  type CurveRow,
  initialCurveContext,
  takeCurveChanges,
} from "./aggregate.ts";

export type CurveEvent =
  | { type: "EVENTS"; points: readonly NormalizedCurvePoint[] }
  | { type: "RESET"; versionBase: number }
  /** A flush takes the changes since the last one (emitted as `changes`). */
  | { type: "COLLECT" };

export type CurveEmitted =
  /** Points of the batch just sent that were not applied (index within the batch). */
  | { type: "rejected"; rejections: CurveRejection[] }
  /** The rows changed since the last COLLECT, and whether the snapshot did. */
  | { type: "changes"; rows: CurveRow[]; snapshot: boolean };

export interface CurveInput {
  curveId: string;
  versionBase?: number;
  /** The newest as_of dates kept (default DEFAULT_KEEP_AS_OFS); older ones are stale_as_of. */
  keepAsOfs?: number;
}

export const curveMachine = setup({
  types: {
    context: {} as CurveContext,
    events: {} as CurveEvent,
    input: {} as CurveInput,
    emitted: {} as CurveEmitted,
  },
  actions: {
    // Single writer: the reducer updates the actor's own context in place.
    apply: enqueueActions(({ context, event, enqueue }) => {
      assertEvent(event, "EVENTS");
      const rejections = applyPoints(context, event.points);
      if (rejections.length > 0) enqueue.emit({ type: "rejected", rejections });
    }),
    collect: enqueueActions(({ context, enqueue }) => {
      enqueue.emit({ type: "changes", ...takeCurveChanges(context) });
    }),
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
  on: {
    RESET: { target: ".empty", actions: "reset" },
    COLLECT: { actions: "collect" },
  },
});
