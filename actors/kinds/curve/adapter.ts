/**
 * The curve kind's adapter: its machine behind the KindAdapter interface, and what a change
 * of its points and snapshot becomes in each sink.
 */
import { createActor } from "xstate";
import type { NormalizedCurvePoint } from "../../../messages/normalized_curve_point.ts";
import type { CurveSnapshot } from "../../../messages/projections.ts";
import { emptyOutputs, type KindAdapter, secondsOf } from "../../actor_kinds.ts";
import { type CurveContext, curveVersion, snapshotPoints, takeCurveChanges } from "./aggregate.ts";
import { curveMachine } from "./machine.ts";

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
