/**
 * Field-by-field comparison of two bars' values with a float tolerance, shared by
 * `reconcile` (silver recomputation vs gold) and `projection:reconcile` (gold vs Redis).
 */
import type { Bar } from "../messages/bar.ts";

export const BAR_VALUE_FIELDS = [
  "open",
  "high",
  "low",
  "close",
  "volume",
  "vwap",
  "count",
] as const;

/** The values of a bar that are compared (not `version`, which differs by design). */
export type BarValues = Pick<Bar, (typeof BAR_VALUE_FIELDS)[number]>;

/** One field that differs: `expected` is the reference side, `actual` the checked side. */
export interface FieldDifference {
  field: string;
  expected: unknown;
  actual: unknown;
}

/** Default relative tolerance for float fields. */
export const DEFAULT_RELATIVE_TOLERANCE = 1e-9;

/**
 * True when two floats are equal within `relative` of the larger magnitude (or of `scale`
 * when that is larger: vwap uses the bar's mean absolute price, since prices of both signs
 * can cancel in sum(price x size)).
 */
export function floatsClose(
  a: number,
  b: number,
  relative = DEFAULT_RELATIVE_TOLERANCE,
  scale = 0,
): boolean {
  if (a === b || (Number.isNaN(a) && Number.isNaN(b))) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return Math.abs(a - b) <= relative * Math.max(Math.abs(a), Math.abs(b), Math.abs(scale));
}

/**
 * The fields of `actual` that differ from `expected`: floats within the tolerance, `count`
 * exactly. `vwapScale` widens the vwap tolerance (see `floatsClose`).
 */
export function diffBarValues(
  expected: BarValues,
  actual: BarValues,
  options: { relative?: number; vwapScale?: number } = {},
): FieldDifference[] {
  const relative = options.relative ?? DEFAULT_RELATIVE_TOLERANCE;
  const out: FieldDifference[] = [];
  for (const field of BAR_VALUE_FIELDS) {
    const e = expected[field];
    const a = actual[field];
    const same = field === "count"
      ? e === a
      : floatsClose(e, a, relative, field === "vwap" ? options.vwapScale ?? 0 : 0);
    if (!same) out.push({ field, expected: e, actual: a });
  }
  return out;
}
