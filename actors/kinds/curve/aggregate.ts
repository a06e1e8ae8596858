/**
 * The curve actor's logic: the snapshot of the newest `as_of` per curve, each tenor's
 * price from the point with the greatest (event time, event_id), and the `gold.curves` row
 * of every (as_of, tenor): the winning point, with a version that grows with each new winner.
 *
 * Memory is bounded by `as_of` order only: the actor keeps the winners of its `keepAsOfs`
 * newest dates seen so far. A point of a date outside them (older than every kept date once
 * they are full, or at or before a date already dropped) cannot be compared with the row
 * already written, so it is rejected as `stale_as_of` (the runtime sends it to the DLQ) and
 * changes nothing. Every decision is taken point by point in log order, so rows, versions
 * and the snapshot never depend on batch boundaries or on when changes are flushed.
 */
import type { NormalizedCurvePoint } from "../../../messages/normalized_curve_point.ts";

/** The `as_of` dates a curve actor keeps by default (about a year and a half of trading days). */
export const DEFAULT_KEEP_AS_OFS = 400;

export interface CurvePointState {
  price: number;
  event_time_ms: number;
  event_id: string;
  /** Version of the ClickHouse row for this (as_of, tenor). */
  version: number;
}

/** A `gold.curves` row to write: the winner of (as_of, tenor) and its version. */
export interface CurveRow extends CurvePointState {
  as_of: string;
  tenor: string;
}

export interface CurveRejection {
  /** Index of the point in the batch it came in. */
  index: number;
  reason: "stale_as_of";
  message: string;
}

export interface CurveContext {
  curveId: string;
  versionBase: number;
  /** Points that won (changed a row): versions grow with it. */
  changes: number;
  /** The newest as_of seen: the one the snapshot shows. */
  asOf: string | null;
  /** Per kept as_of, per tenor, the winning point. */
  asOfs: Record<string, Record<string, CurvePointState>>;
  /** The kept as_of dates, ascending (the keys of `asOfs`). */
  dates: string[];
  keepAsOfs: number;
  /** The newest date no longer kept: points at or before it are `stale_as_of`. */
  evictedThrough: string | null;
  /** Rows changed since the last take, per `as_of|tenor` (the latest winner). */
  pending: Record<string, CurveRow>;
  snapshotChanged: boolean;
  /**
   * Version of the snapshot projection: the curve version when a point last changed it, so
   * it does not depend on when the snapshot is flushed.
   */
  snapshotVersion: number;
  applied: number;
  /** Points rejected as `stale_as_of`, in total. */
  stale: number;
}

export function initialCurveContext(
  curveId: string,
  versionBase = 0,
  keepAsOfs = DEFAULT_KEEP_AS_OFS,
): CurveContext {
  if (!Number.isInteger(keepAsOfs) || keepAsOfs < 1) {
    throw new RangeError(`Cannot track curve ${curveId}: keepAsOfs must be >= 1, got ${keepAsOfs}`);
  }
  return {
    curveId,
    versionBase,
    changes: 0,
    asOf: null,
    asOfs: {},
    dates: [],
    keepAsOfs,
    evictedThrough: null,
    pending: {},
    snapshotChanged: false,
    snapshotVersion: versionBase,
    applied: 0,
    stale: 0,
  };
}

export function curveVersion(ctx: CurveContext): number {
  return ctx.versionBase + ctx.changes;
}

/** Sets an own property, even for a key such as `__proto__` (a tenor is any string). */
function setOwn<V>(record: Record<string, V>, key: string, value: V): void {
  if (key === "__proto__") {
    Object.defineProperty(record, key, {
      value,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  } else record[key] = value;
}

function wins(p: NormalizedCurvePoint, tenors: Record<string, CurvePointState>): boolean {
  // hasOwn: tenors such as "constructor" must not match Object.prototype members.
  if (!Object.hasOwn(tenors, p.tenor)) return true;
  const current = tenors[p.tenor]!;
  return p.event_time_ms > current.event_time_ms ||
    (p.event_time_ms === current.event_time_ms && p.event_id > current.event_id);
}

function dayBefore(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) - 86_400_000).toISOString().slice(0, 10);
}

/**
 * Brings a context persisted by an earlier version of this file (no `dates`: it kept 32
 * dates and pruned per batch) to the current shape. Dates it may have dropped are treated
 * as evicted, so a point for one of them is still never written over a better row.
 */
function upgradeLegacy(ctx: CurveContext): void {
  if (Array.isArray(ctx.dates)) return;
  const legacy = ctx as unknown as { changedPoints?: string[]; evicted?: number };
  ctx.dates = Object.keys(ctx.asOfs).sort();
  const oldest = ctx.dates[0];
  const mayHaveDropped = (legacy.evicted ?? 0) > 0 || ctx.dates.length >= ctx.keepAsOfs;
  ctx.evictedThrough = oldest !== undefined && mayHaveDropped ? dayBefore(oldest) : null;
  ctx.keepAsOfs = Math.max(ctx.keepAsOfs, DEFAULT_KEEP_AS_OFS);
  ctx.pending = {};
  for (const key of legacy.changedPoints ?? []) {
    const [asOf, tenor] = [key.slice(0, 10), key.slice(11)];
    const point = ctx.asOfs[asOf]?.[tenor];
    if (point) ctx.pending[key] = { ...point, as_of: asOf, tenor };
  }
  ctx.snapshotVersion = curveVersion(ctx);
  ctx.stale = legacy.evicted ?? 0;
  delete legacy.changedPoints;
  delete legacy.evicted;
}

/** Finds or makes room for the point's date; null when the date is not (or no longer) kept. */
function tenorsFor(ctx: CurveContext, asOf: string): Record<string, CurvePointState> | null {
  if (Object.hasOwn(ctx.asOfs, asOf)) return ctx.asOfs[asOf]!;
  if (ctx.evictedThrough !== null && asOf <= ctx.evictedThrough) return null;
  const dates = ctx.dates;
  if (dates.length >= ctx.keepAsOfs && asOf < dates[0]!) {
    // Not among the newest keepAsOfs dates: as if kept and dropped at once.
    ctx.evictedThrough = asOf;
    return null;
  }
  let at = dates.length;
  while (at > 0 && dates[at - 1]! > asOf) at--;
  dates.splice(at, 0, asOf);
  const tenors: Record<string, CurvePointState> = {};
  ctx.asOfs[asOf] = tenors;
  while (dates.length > ctx.keepAsOfs) {
    const dropped = dates.shift()!;
    delete ctx.asOfs[dropped];
    ctx.evictedThrough = dropped;
  }
  return tenors;
}

/**
 * Applies a batch, point by point in order; the points rejected as `stale_as_of` are returned
 * (indexes within `points`) and change nothing.
 */
export function applyPoints(
  ctx: CurveContext,
  points: readonly NormalizedCurvePoint[],
): CurveRejection[] {
  upgradeLegacy(ctx);
  const rejected: CurveRejection[] = [];
  points.forEach((p, index) => {
    ctx.applied++;
    const tenors = tenorsFor(ctx, p.as_of);
    if (tenors === null) {
      ctx.stale++;
      rejected.push({
        index,
        reason: "stale_as_of",
        message: `as_of ${p.as_of} is not among the ${ctx.keepAsOfs} newest as_of dates of ` +
          `curve ${ctx.curveId} (oldest kept: ${ctx.dates[0] ?? "none"}); its gold.curves row ` +
          `cannot be compared, so it is not written`,
      });
      return;
    }
    if (!wins(p, tenors)) return;
    ctx.changes++;
    const state: CurvePointState = {
      price: p.price,
      event_time_ms: p.event_time_ms,
      event_id: p.event_id,
      version: curveVersion(ctx),
    };
    setOwn(tenors, p.tenor, state);
    // Keys start with a date and hold a "|": never an Object.prototype member.
    ctx.pending[`${p.as_of}|${p.tenor}`] = { ...state, as_of: p.as_of, tenor: p.tenor };
    if (ctx.asOf === null || p.as_of >= ctx.asOf) {
      ctx.asOf = p.as_of;
      ctx.snapshotChanged = true;
      ctx.snapshotVersion = state.version;
    }
  });
  return rejected;
}

/** The rows changed since the last take (in order of first change) and whether the snapshot did. */
export function takeCurveChanges(ctx: CurveContext): { rows: CurveRow[]; snapshot: boolean } {
  upgradeLegacy(ctx);
  const changes = { rows: Object.values(ctx.pending), snapshot: ctx.snapshotChanged };
  ctx.pending = {};
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
