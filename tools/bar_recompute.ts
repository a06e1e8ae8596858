/**
 * Recomputes bars from `silver.ticks` inside ClickHouse and compares them with
 * `gold.bars FINAL`, returning only the bars that are missing, extra or different.
 *
 * The recomputation follows CONTRACT.md: tumbling windows aligned to the UTC epoch,
 * open/close by (event_time_ms, event_id), each event_id once (`FINAL`). Both sides are
 * unioned and grouped by (instrument_id, resolution, start_ms) in one query, so only the
 * mismatches travel back and the SQL runs on ClickHouse 18.16 and on current servers.
 */
import type { BarWindow } from "../config/config.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import { sqlIdentifier, sqlNumber, sqlString } from "../stores/sql.ts";
import { type BarValues, diffBarValues, type FieldDifference } from "./bar_diff.ts";

export interface BarComparisonOptions {
  silverDb: string;
  goldDb: string;
  windows: readonly BarWindow[];
  /** Bars whose window lies within [fromMs, toMs) are compared. */
  fromMs: number;
  toMs: number;
  instrumentPrefix?: string;
  /** Used for the `arrived_after_close` hint only. */
  allowedLatenessMs: number;
  relativeTolerance: number;
}

export interface SilverBar extends BarValues {
  /**
   * Events of the bar that reached silver (ingest_time_ms) after the bar's end plus the
   * allowed lateness: in live operation these were most likely dropped as `late_event`.
   */
  arrived_after_close: number;
}

export interface GoldBar extends BarValues {
  version: number;
  final: boolean;
}

export type BarMismatchKind = "missing_in_gold" | "extra_in_gold" | "different";

export interface BarMismatch {
  kind: BarMismatchKind;
  instrument_id: string;
  resolution: string;
  start_ms: number;
  end_ms: number;
  /** For `different`: the fields that differ (expected = silver, actual = gold). */
  differences: FieldDifference[];
  silver: SilverBar | null;
  gold: GoldBar | null;
}

interface Row {
  instrument_id: string;
  resolution: string;
  start_ms: string;
  w: string;
  in_silver: number;
  in_gold: number;
  s_open: number | null;
  s_high: number | null;
  s_low: number | null;
  s_close: number | null;
  s_volume: number | null;
  s_vwap: number | null;
  s_count: string;
  s_vwap_scale: number | null;
  s_late: string;
  g_open: number | null;
  g_high: number | null;
  g_low: number | null;
  g_close: number | null;
  g_volume: number | null;
  g_vwap: number | null;
  g_count: string;
  g_version: string;
  g_final: number;
}

function checkOptions(options: BarComparisonOptions): void {
  if (options.windows.length === 0) {
    throw new RangeError("Cannot compare bars: no bar windows configured");
  }
  if (!(options.fromMs < options.toMs)) {
    throw new RangeError(
      `Cannot compare bars: from (${options.fromMs}) must be before to (${options.toMs})`,
    );
  }
  for (const w of options.windows) {
    if (!/^[\w.-]+$/.test(w.name) || !(w.ms > 0)) {
      throw new RangeError(`Cannot compare bars: bad window ${JSON.stringify(w)}`);
    }
  }
}

/** The single comparison query (exported for inspection and tests). */
export function barComparisonQuery(options: BarComparisonOptions): string {
  checkOptions(options);
  const silver = `${sqlIdentifier(options.silverDb)}.ticks`;
  const gold = `${sqlIdentifier(options.goldDb)}.bars`;
  const msList = `[${options.windows.map((w) => `toInt64(${sqlNumber(w.ms)})`).join(", ")}]`;
  const nameList = `[${options.windows.map((w) => sqlString(w.name)).join(", ")}]`;
  const from = sqlNumber(options.fromMs);
  const to = sqlNumber(options.toMs);
  const prefix = options.instrumentPrefix
    ? `AND startsWith(instrument_id, ${sqlString(options.instrumentPrefix)})`
    : "";
  // The SQL prefilter is twice as strict as the final check so that it never hides a
  // bar the TypeScript check would report; the TypeScript check decides.
  const tol = sqlNumber(options.relativeTolerance / 2);
  // greatest() takes two arguments on 18.16.
  const far = (f: string, scale?: string) => {
    const magnitude = `greatest(abs(s_${f}), abs(g_${f}))`;
    return `abs(s_${f} - g_${f}) > ${tol} * ${
      scale ? `greatest(${magnitude}, abs(${scale}))` : magnitude
    }`;
  };
  // Every alias differs from every column name it reads: ClickHouse rejects `f(x) AS x`.
  return `
SELECT iid AS instrument_id, res AS resolution, bstart AS start_ms, max(bw) AS w,
  max(side = 1) AS in_silver, max(side = 2) AS in_gold,
  anyIf(o, side = 1) AS s_open, anyIf(o, side = 2) AS g_open,
  anyIf(h, side = 1) AS s_high, anyIf(h, side = 2) AS g_high,
  anyIf(l, side = 1) AS s_low, anyIf(l, side = 2) AS g_low,
  anyIf(c, side = 1) AS s_close, anyIf(c, side = 2) AS g_close,
  anyIf(vol, side = 1) AS s_volume, anyIf(vol, side = 2) AS g_volume,
  anyIf(vw, side = 1) AS s_vwap, anyIf(vw, side = 2) AS g_vwap,
  anyIf(cnt, side = 1) AS s_count, anyIf(cnt, side = 2) AS g_count,
  anyIf(vscale, side = 1) AS s_vwap_scale, anyIf(late, side = 1) AS s_late,
  anyIf(ver, side = 2) AS g_version, anyIf(fin, side = 2) AS g_final
FROM (
  SELECT toUInt8(1) AS side, instrument_id AS iid, rb_res AS res, toInt64(rb_start) AS bstart,
    toInt64(rb_w) AS bw, toFloat64(rb_open) AS o, toFloat64(rb_high) AS h,
    toFloat64(rb_low) AS l, toFloat64(rb_close) AS c, toFloat64(rb_volume) AS vol,
    toFloat64(rb_vwap) AS vw, toUInt64(rb_count) AS cnt, toFloat64(rb_vscale) AS vscale,
    toUInt64(rb_late) AS late, toUInt64(0) AS ver, toUInt8(0) AS fin
  FROM (
    SELECT instrument_id, rb_w, transform(rb_w, ${msList}, ${nameList}, '') AS rb_res,
      intDiv(event_time_ms, rb_w) * rb_w - if(event_time_ms % rb_w < 0, rb_w, 0) AS rb_start,
      argMin(price, (event_time_ms, event_id)) AS rb_open,
      max(price) AS rb_high,
      min(price) AS rb_low,
      argMax(price, (event_time_ms, event_id)) AS rb_close,
      sum(size) AS rb_volume,
      if(rb_volume != 0, sum(price * size) / rb_volume, nan) AS rb_vwap,
      count() AS rb_count,
      if(rb_volume != 0, sum(abs(price) * size) / rb_volume, 0) AS rb_vscale,
      countIf(ingest_time_ms > rb_start + rb_w + ${sqlNumber(options.allowedLatenessMs)}) AS rb_late
    FROM ${silver} FINAL
    ARRAY JOIN ${msList} AS rb_w
    WHERE event_time_ms >= ${from} AND event_time_ms < ${to} ${prefix}
    GROUP BY instrument_id, rb_w, rb_start
    HAVING rb_start >= ${from} AND rb_start + rb_w <= ${to}
  )
  UNION ALL
  SELECT toUInt8(2) AS side, instrument_id AS iid, resolution AS res,
    toInt64(start_ms) AS bstart,
    toInt64(transform(resolution, ${nameList}, ${msList}, toInt64(0))) AS bw,
    toFloat64(open) AS o, toFloat64(high) AS h, toFloat64(low) AS l, toFloat64(close) AS c,
    toFloat64(volume) AS vol, toFloat64(vwap) AS vw, toUInt64(count) AS cnt,
    toFloat64(0) AS vscale, toUInt64(0) AS late, toUInt64(version) AS ver,
    toUInt8(final) AS fin
  FROM ${gold} FINAL
  WHERE resolution IN (${options.windows.map((w) => sqlString(w.name)).join(", ")})
    AND start_ms >= ${from}
    AND start_ms + transform(resolution, ${nameList}, ${msList}, toInt64(0)) <= ${to}
    ${prefix}
)
GROUP BY iid, res, bstart
HAVING in_silver = 0 OR in_gold = 0 OR s_count != g_count
  OR ${far("open")} OR ${far("high")} OR ${far("low")} OR ${far("close")}
  OR ${far("volume")} OR ${far("vwap", "s_vwap_scale")} OR isNaN(s_vwap) != isNaN(g_vwap)
ORDER BY iid, res, bstart`;
}

const num = (v: number | null) => (v === null ? NaN : v);

function toMismatch(row: Row, relative: number): BarMismatch | undefined {
  const startMs = Number(row.start_ms);
  const silver: SilverBar | null = row.in_silver
    ? {
      open: num(row.s_open),
      high: num(row.s_high),
      low: num(row.s_low),
      close: num(row.s_close),
      volume: num(row.s_volume),
      vwap: num(row.s_vwap),
      count: Number(row.s_count),
      arrived_after_close: Number(row.s_late),
    }
    : null;
  const gold: GoldBar | null = row.in_gold
    ? {
      open: num(row.g_open),
      high: num(row.g_high),
      low: num(row.g_low),
      close: num(row.g_close),
      volume: num(row.g_volume),
      vwap: num(row.g_vwap),
      count: Number(row.g_count),
      version: Number(row.g_version),
      final: row.g_final === 1,
    }
    : null;
  const base = {
    instrument_id: row.instrument_id,
    resolution: row.resolution,
    start_ms: startMs,
    end_ms: startMs + Number(row.w),
    silver,
    gold,
  };
  if (silver && gold) {
    const differences = diffBarValues(silver, gold, {
      relative,
      vwapScale: num(row.s_vwap_scale),
    });
    if (differences.length === 0) return undefined;
    return { kind: "different", differences, ...base };
  }
  return { kind: silver ? "missing_in_gold" : "extra_in_gold", differences: [], ...base };
}

/**
 * Streams the bars that differ between the silver recomputation and `gold.bars FINAL`,
 * ordered by (instrument_id, resolution, start_ms).
 */
export async function* streamBarMismatches(
  ch: ClickHouseClient,
  options: BarComparisonOptions,
  signal?: AbortSignal,
): AsyncGenerator<BarMismatch> {
  const query = barComparisonQuery(options);
  const result = await ch.query({
    query,
    format: "JSONEachRow",
    ...(signal ? { abort_signal: signal } : {}),
  });
  for await (const rows of result.stream()) {
    for (const row of rows) {
      const mismatch = toMismatch(row.json<Row>(), options.relativeTolerance);
      if (mismatch) yield mismatch;
    }
  }
}
