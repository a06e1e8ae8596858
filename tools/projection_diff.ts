/**
 * Compares one Redis projection value with what ClickHouse says it should be. Pure: no I/O.
 * A value that is ahead of ClickHouse (a newer event, bar or as_of) is `ahead`, not a
 * difference: the live writer updates Redis before ClickHouse's batched flush lands.
 */
import { Bar } from "../messages/bar.ts";
import { CurveSnapshot, LatestPrice } from "../messages/projections.ts";
import { diffBarValues, type FieldDifference, floatsClose } from "./bar_diff.ts";
import type { ExpectedBar, ExpectedCurve, ExpectedLatest } from "./projection_expected.ts";

export type ProjectionKind = "latest" | "bar" | "curve";

export type ProjectionVerdict =
  | { status: "same" }
  | { status: "ahead"; differences: FieldDifference[] }
  | { status: "different"; differences: FieldDifference[] }
  | { status: "invalid"; message: string };

function parse(raw: string): { ok: true; value: unknown } | { ok: false; message: string } {
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch (err) {
    return { ok: false, message: `not JSON: ${(err as Error).message}` };
  }
}

function firstIssue(error: { issues: { path: PropertyKey[]; message: string }[] }): string {
  const issue = error.issues[0];
  return issue ? `${issue.path.map(String).join(".") || "value"}: ${issue.message}` : "invalid";
}

function exact(out: FieldDifference[], field: string, expected: unknown, actual: unknown) {
  if (expected !== actual) out.push({ field, expected, actual });
}

function float(out: FieldDifference[], field: string, expected: number, actual: number) {
  if (!floatsClose(expected, actual)) out.push({ field, expected, actual });
}

const verdict = (differences: FieldDifference[]): ProjectionVerdict =>
  differences.length === 0 ? { status: "same" } : { status: "different", differences };

export function diffLatest(raw: string, expected: ExpectedLatest): ProjectionVerdict {
  const parsed = parse(raw);
  if (!parsed.ok) return { status: "invalid", message: parsed.message };
  const checked = LatestPrice.safeParse(parsed.value);
  if (!checked.success) return { status: "invalid", message: firstIssue(checked.error) };
  const a = checked.data;
  const e = expected.value;
  const out: FieldDifference[] = [];
  exact(out, "instrument_id", e.instrument_id, a.instrument_id);
  exact(out, "event_time_ms", e.event_time_ms, a.event_time_ms);
  exact(out, "event_id", e.event_id, a.event_id);
  float(out, "price", e.price, a.price);
  float(out, "size", e.size, a.size);
  const newer = a.event_time_ms > e.event_time_ms ||
    (a.event_time_ms === e.event_time_ms && a.event_id > e.event_id);
  if (newer && out.length > 0) return { status: "ahead", differences: out };
  return verdict(out);
}

export function diffBar(raw: string, expected: ExpectedBar): ProjectionVerdict {
  const parsed = parse(raw);
  if (!parsed.ok) return { status: "invalid", message: parsed.message };
  const checked = Bar.safeParse(parsed.value);
  if (!checked.success) return { status: "invalid", message: firstIssue(checked.error) };
  const a = checked.data;
  const e = expected.value;
  const out: FieldDifference[] = [];
  exact(out, "instrument_id", e.instrument_id, a.instrument_id);
  exact(out, "resolution", e.resolution, a.resolution);
  exact(out, "start_ms", e.start_ms, a.start_ms);
  exact(out, "end_ms", e.end_ms, a.end_ms);
  out.push(...diffBarValues(e, a));
  exact(out, "final", e.final, a.final);
  if (a.start_ms > e.start_ms) return { status: "ahead", differences: out };
  return verdict(out);
}

export function diffCurve(raw: string, expected: ExpectedCurve): ProjectionVerdict {
  const parsed = parse(raw);
  if (!parsed.ok) return { status: "invalid", message: parsed.message };
  const checked = CurveSnapshot.safeParse(parsed.value);
  if (!checked.success) return { status: "invalid", message: firstIssue(checked.error) };
  const a = checked.data;
  const e = expected.value;
  const out: FieldDifference[] = [];
  exact(out, "curve_id", e.curve_id, a.curve_id);
  exact(out, "as_of", e.as_of, a.as_of);
  const actualPoints = new Map(a.points.map((p) => [p.tenor, p]));
  const expectedTenors = new Set(e.points.map((p) => p.tenor));
  for (const p of e.points) {
    const got = actualPoints.get(p.tenor);
    if (!got) {
      out.push({ field: `points[${p.tenor}]`, expected: p, actual: null });
      continue;
    }
    float(out, `points[${p.tenor}].price`, p.price, got.price);
    exact(out, `points[${p.tenor}].event_time_ms`, p.event_time_ms, got.event_time_ms);
  }
  for (const p of a.points) {
    if (!expectedTenors.has(p.tenor)) {
      out.push({ field: `points[${p.tenor}]`, expected: null, actual: p });
    }
  }
  if (a.as_of > e.as_of) return { status: "ahead", differences: out };
  return verdict(out);
}

/** The `version` of a stored value when it has a numeric one (even if otherwise invalid). */
export function storedVersion(raw: string | null): number {
  if (raw === null) return 0;
  try {
    const version = (JSON.parse(raw) as { version?: unknown } | null)?.version;
    return typeof version === "number" && Number.isFinite(version) ? version : 0;
  } catch {
    return 0;
  }
}
