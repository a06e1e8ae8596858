/**
 * The curve actor as an XState v5 machine (logic in aggregate.ts), and its adapter: how the
 * runtime drives it (KindAdapter) and what a change of its points and snapshot becomes in
 * each sink. Only the machine changes its context; what the runtime needs back it emits
 * within `send`: the points of a batch it rejected, and on COLLECT the changes since the
 * last collect (which it then forgets).
 */
import { assertEvent, enqueueActions, setup } from "xstate";
import type { NormalizedCurvePoint } from "../../../messages/normalized_curve_point.ts";
import type { CurveSnapshot } from "../../../messages/projections.ts";
import { emptyOutputs, type KindAdapter, publishLatest, secondsOf } from "../../actor_kinds.ts";
import { MachineHost } from "../../machine_host.ts";
import { withQuickRestore } from "../../machine_restore.ts";
import {
  applyPoints,
  type CurveContext,
  type CurveRejection,
  type CurveRow,
  curveVersion,
  initialCurveContext,
  snapshotPoints,
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

type Changes = { rows: CurveRow[]; snapshot: boolean };
const NONE: CurveRejection[] = [];
const NO_CHANGES: Changes = { rows: [], snapshot: false };

export function curveAdapter(): KindAdapter<NormalizedCurvePoint> {
  // A machine emits within `send`, so what the last send emitted is all one slot needs.
  let rejections = NONE;
  let changes: Changes | null = null;
  const restorable = withQuickRestore(curveMachine);
  const host = new MachineHost();
  const onEmitted = (emitted: CurveEmitted) => {
    if (emitted.type === "rejected") rejections = emitted.rejections;
    else changes = emitted;
  };
  return {
    kind: "curve",
    spawn(key, persisted, versionBase) {
      const input = { curveId: key, versionBase: versionBase ?? 0 };
      return host.startMachine(restorable, input, persisted, onEmitted);
    },
    stop: (actor) => host.stop(actor),
    machines: () => host.live,
    apply(actor, events) {
      // Points of an as_of older than the dates the actor keeps: stale_as_of in the DLQ.
      rejections = NONE;
      actor.send({ type: "EVENTS", points: events.map((e) => e.value) });
      return rejections;
    },
    collect(actor, key) {
      changes = null;
      actor.send({ type: "COLLECT" });
      // (Set by onEmitted during the send: TypeScript cannot see that.)
      const taken = (changes as Changes | null) ?? NO_CHANGES;
      const ctx = actor.getSnapshot().context as CurveContext;
      const out = emptyOutputs();
      for (const row of taken.rows) {
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
      if (taken.snapshot && ctx.asOf !== null) {
        const snapshot: CurveSnapshot = {
          curve_id: key,
          as_of: ctx.asOf,
          points: snapshotPoints(ctx),
          version: ctx.snapshotVersion,
        };
        publishLatest(out, {
          projectionKey: `projection:curve:${key}`,
          topic: "curveSnapshot",
          key,
          version: snapshot.version,
          value: snapshot,
        });
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
