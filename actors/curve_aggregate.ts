/**
 * The curve actor's logic: the snapshot of the newest `as_of` per curve, each tenor's
 * price from the point with the greatest (event time, event_id). Points of older `as_of`
 * dates are kept (for the most recent `keepAsOfs` dates) only to write ClickHouse rows.
 */
import type { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";

export interface CurvePointState {
  price: number;
  event_time_ms: number;
  event_id: string;
  /** Version of the ClickHouse row for this (as_of, tenor). */
  version: number;
}

export interface CurveContext {
  curveId: string;
  versionBase: number;
  /** Points that won (changed a tenor's price): versions grow with it. */
  changes: number;
  /** The newest as_of seen: the one the snapshot shows. */
  asOf: string | null;
  asOfs: Record<string, Record<string, CurvePointState>>;
  keepAsOfs: number;
  changedPoints: string[];
  snapshotChanged: boolean;
  applied: number;
  /** Points for dates older than every kept date (not written; see applyPoints). */
  evicted: number;
}

export function initialCurveContext(
  curveId: string,
  versionBase = 0,
  keepAsOfs = 32,
): CurveContext {
  return {
    curveId,
    versionBase,
    changes: 0,
    asOf: null,
    asOfs: {},
    keepAsOfs,
    changedPoints: [],
    snapshotChanged: false,
    applied: 0,
    evicted: 0,
  };
}

export function curveVersion(ctx: CurveContext): number {
  return ctx.versionBase + ctx.changes;
}

function wins(p: NormalizedCurvePoint, tenors: Record<string, CurvePointState>): boolean {
  // hasOwn: tenors such as "constructor" must not match Object.prototype members.
  if (!Object.hasOwn(tenors, p.tenor)) return true;
  const current = tenors[p.tenor]!;
  return p.event_time_ms > current.event_time_ms ||
    (p.event_time_ms === current.event_time_ms && p.event_id > current.event_id);
}

export function applyPoints(ctx: CurveContext, points: readonly NormalizedCurvePoint[]): void {
  for (const p of points) {
    ctx.applied++;
    // A date older than every date kept in memory has lost its history: nothing can tell
    // whether this point beats the row already in ClickHouse, so it is not written (it is
    // still in silver.curve_points). keepAsOfs spans more than a year of trading dates.
    const known = Object.hasOwn(ctx.asOfs, p.as_of);
    const dates = Object.keys(ctx.asOfs);
    if (!known && dates.length >= ctx.keepAsOfs && dates.every((d) => d > p.as_of)) {
      ctx.evicted++;
      continue;
    }
    const tenors = known ? ctx.asOfs[p.as_of]! : (ctx.asOfs[p.as_of] = {});
    if (!wins(p, tenors)) continue;
    ctx.changes++;
    tenors[p.tenor] = {
      price: p.price,
      event_time_ms: p.event_time_ms,
      event_id: p.event_id,
      version: curveVersion(ctx),
    };
    const key = `${p.as_of}|${p.tenor}`;
    if (!ctx.changedPoints.includes(key)) ctx.changedPoints.push(key);
    if (ctx.asOf === null || p.as_of >= ctx.asOf) {
      ctx.asOf = p.as_of;
      ctx.snapshotChanged = true;
    }
  }
  pruneAsOfs(ctx);
}

/** Keeps the newest `keepAsOfs` dates (and any with unflushed changes). */
function pruneAsOfs(ctx: CurveContext): void {
  const dates = Object.keys(ctx.asOfs).sort();
  for (const date of dates.slice(0, Math.max(0, dates.length - ctx.keepAsOfs))) {
    if (!ctx.changedPoints.some((k) => k.startsWith(`${date}|`))) delete ctx.asOfs[date];
  }
}

export function takeCurveChanges(ctx: CurveContext): { points: string[]; snapshot: boolean } {
  const changes = { points: ctx.changedPoints, snapshot: ctx.snapshotChanged };
  ctx.changedPoints = [];
  ctx.snapshotChanged = false;
  return changes;
}

/** The snapshot projection's points for the newest as_of, sorted by tenor. */
export function snapshotPoints(ctx: CurveContext) {
  if (ctx.asOf === null) return [];
  const tenors = ctx.asOfs[ctx.asOf] ?? {};
  return Object.keys(tenors).sort().map((tenor) => ({
    tenor,
    price: tenors[tenor]!.price,
    event_time_ms: tenors[tenor]!.event_time_ms,
  }));
}
