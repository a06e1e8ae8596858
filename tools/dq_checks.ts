/**
 * The data-quality checks of `deno task dq`, each one ClickHouse query (18.16 and current
 * servers): stale instruments, price spikes, curves missing tenors, non-positive sizes.
 */
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import { queryRows } from "../stores/clickhouse.ts";
import { sqlIdentifier, sqlNumber, sqlString } from "../stores/sql.ts";

export interface StaleFinding {
  check: "stale";
  instrument_id: string;
  last_event_time_ms: number;
  age_ms: number;
}

export interface SpikeFinding {
  check: "spike";
  instrument_id: string;
  event_id: string;
  event_time_ms: number;
  price: number;
  /** Mean and population standard deviation of the instrument's other prices in the window. */
  mean: number;
  stddev: number;
  /** |price - mean| / stddev (stddev floored at 1e-9 x |mean|, see `findSpikes`). */
  sigmas: number;
  samples: number;
}

export interface MissingTenorsFinding {
  check: "missing_tenors";
  curve_id: string;
  as_of: string;
  previous_as_of: string;
  missing: string[];
}

export interface TooFewTenorsFinding {
  check: "too_few_tenors";
  curve_id: string;
  as_of: string;
  tenors: number;
  expected: number;
}

export interface NonPositiveSizeFinding {
  check: "non_positive_size";
  instrument_id: string;
  count: number;
  min_size: number | null;
  first_event_time_ms: number;
  last_event_time_ms: number;
  sample_event_ids: string[];
}

export type DqFinding =
  | StaleFinding
  | SpikeFinding
  | MissingTenorsFinding
  | TooFewTenorsFinding
  | NonPositiveSizeFinding;

const prefixFilter = (column: string, prefix: string | undefined) =>
  prefix ? `AND startsWith(${column}, ${sqlString(prefix)})` : "";

/**
 * Instruments whose newest silver tick is older than `staleAfterMs`, among those with a
 * tick in the last `lookbackMs` (older ones count as retired and are not reported).
 */
export async function findStale(
  ch: ClickHouseClient,
  o: { silverDb: string; nowMs: number; staleAfterMs: number; lookbackMs: number; prefix?: string },
): Promise<StaleFinding[]> {
  const rows = await queryRows<{ instrument_id: string; last_ms: string }>(
    ch,
    `SELECT instrument_id, max(event_time_ms) AS last_ms
     FROM ${sqlIdentifier(o.silverDb)}.ticks
     WHERE event_time_ms >= ${sqlNumber(o.nowMs - o.lookbackMs)} ${
      prefixFilter("instrument_id", o.prefix)
    }
     GROUP BY instrument_id
     HAVING last_ms < ${sqlNumber(o.nowMs - o.staleAfterMs)}
     ORDER BY last_ms, instrument_id`,
  );
  return rows.map((r) => ({
    check: "stale",
    instrument_id: r.instrument_id,
    last_event_time_ms: Number(r.last_ms),
    age_ms: o.nowMs - Number(r.last_ms),
  }));
}

/**
 * Ticks in [nowMs - windowMs, nowMs] whose price lies more than `sigma` standard deviations
 * from the mean of the instrument's other ticks in the window (leave-one-out, so a spike
 * does not hide itself by inflating the deviation), for instruments with at least
 * `minSamples` ticks. The deviation is floored at 1e-9 x |mean| (and 1e-12): in an
 * otherwise constant series any real move is reported.
 */
export async function findSpikes(
  ch: ClickHouseClient,
  o: {
    silverDb: string;
    nowMs: number;
    windowMs: number;
    sigma: number;
    minSamples: number;
    limit: number;
    prefix?: string;
  },
): Promise<SpikeFinding[]> {
  const ticks = `(SELECT instrument_id, event_id, event_time_ms, price
      FROM ${sqlIdentifier(o.silverDb)}.ticks FINAL
      WHERE event_time_ms >= ${sqlNumber(o.nowMs - o.windowMs)}
        AND event_time_ms <= ${sqlNumber(o.nowMs)} ${prefixFilter("instrument_id", o.prefix)})`;
  const rows = await queryRows<{
    instrument_id: string;
    event_id: string;
    event_time_ms: string;
    price: number;
    n: string;
    others_mean: number;
    others_std: number;
    z: number;
  }>(
    ch,
    `SELECT instrument_id, event_id, event_time_ms, price, n, others_mean, others_std,
       abs(price - others_mean) / greatest(others_std, greatest(1e-9 * abs(others_mean), 1e-12)) AS z
     FROM (
       SELECT instrument_id, event_id, event_time_ms, price, n,
         m + (d1 - (price - m)) / (n - 1) AS others_mean,
         sqrt(greatest((d2 - (price - m) * (price - m)) / (n - 1)
           - ((d1 - (price - m)) / (n - 1)) * ((d1 - (price - m)) / (n - 1)), 0)) AS others_std
       FROM ${ticks} AS tick
       ANY INNER JOIN (
         SELECT instrument_id, n, m, sum(price - m) AS d1, sum((price - m) * (price - m)) AS d2
         FROM ${ticks} AS tick_in
         ANY INNER JOIN (
           SELECT instrument_id, count() AS n, avg(price) AS m FROM ${ticks} AS tick_all
           GROUP BY instrument_id
           HAVING n >= ${sqlNumber(Math.max(2, o.minSamples))}
         ) AS mean_by_instrument USING instrument_id
         GROUP BY instrument_id, n, m
       ) AS moments USING instrument_id
     )
     WHERE z > ${sqlNumber(o.sigma)}
     ORDER BY z DESC, instrument_id, event_id
     LIMIT ${sqlNumber(o.limit)}`,
  );
  return rows.map((r) => ({
    check: "spike",
    instrument_id: r.instrument_id,
    event_id: r.event_id,
    event_time_ms: Number(r.event_time_ms),
    price: r.price,
    mean: r.others_mean,
    stddev: r.others_std,
    sigmas: r.z,
    samples: Number(r.n),
  }));
}

/**
 * Per curve, the tenors of its newest as_of against the previous as_of (silver.curve_points):
 * tenors the previous one had and the newest lacks; and, with `expectedTenors`, a newest
 * as_of with fewer tenors than that.
 */
export async function findTenorGaps(
  ch: ClickHouseClient,
  o: { silverDb: string; gapCheck: boolean; expectedTenors?: number; prefix?: string },
): Promise<(MissingTenorsFinding | TooFewTenorsFinding)[]> {
  const table = `${sqlIdentifier(o.silverDb)}.curve_points`;
  const rows = await queryRows<{ curve_id: string; d: string; tenors: string[] }>(
    ch,
    `SELECT curve_id, toString(as_of) AS d, groupUniqArray(tenor) AS tenors
     FROM ${table}
     WHERE (curve_id, as_of) IN (
       SELECT curve_id, arrayJoin(arraySlice(arrayReverseSort(groupUniqArray(as_of)), 1, 2))
       FROM ${table}
       WHERE 1 ${prefixFilter("curve_id", o.prefix)}
       GROUP BY curve_id)
     GROUP BY curve_id, as_of
     ORDER BY curve_id, d DESC`,
  );
  const byCurve = new Map<string, { d: string; tenors: string[] }[]>();
  for (const r of rows) {
    const list = byCurve.get(r.curve_id) ?? [];
    list.push({ d: r.d, tenors: r.tenors });
    byCurve.set(r.curve_id, list);
  }
  const out: (MissingTenorsFinding | TooFewTenorsFinding)[] = [];
  for (const [curveId, list] of byCurve) {
    list.sort((a, b) => (a.d < b.d ? 1 : a.d > b.d ? -1 : 0));
    const [newest, previous] = list;
    if (!newest) continue;
    if (o.gapCheck && previous) {
      const have = new Set(newest.tenors);
      const missing = previous.tenors.filter((t) => !have.has(t)).sort();
      if (missing.length > 0) {
        out.push({
          check: "missing_tenors",
          curve_id: curveId,
          as_of: newest.d,
          previous_as_of: previous.d,
          missing,
        });
      }
    }
    if (o.expectedTenors !== undefined && newest.tenors.length < o.expectedTenors) {
      out.push({
        check: "too_few_tenors",
        curve_id: curveId,
        as_of: newest.d,
        tenors: newest.tenors.length,
        expected: o.expectedTenors,
      });
    }
  }
  return out;
}

/** Instruments with ticks whose size is not > 0 (zero, negative or NaN), all of silver. */
export async function findNonPositiveSizes(
  ch: ClickHouseClient,
  o: { silverDb: string; prefix?: string },
): Promise<NonPositiveSizeFinding[]> {
  const rows = await queryRows<{
    instrument_id: string;
    n: string;
    min_size: number | null;
    first_ms: string;
    last_ms: string;
    samples: string[];
  }>(
    ch,
    `SELECT instrument_id, count() AS n, min(size) AS min_size,
       min(event_time_ms) AS first_ms, max(event_time_ms) AS last_ms,
       groupArray(5)(event_id) AS samples
     FROM ${sqlIdentifier(o.silverDb)}.ticks FINAL
     WHERE NOT (size > 0) ${prefixFilter("instrument_id", o.prefix)}
     GROUP BY instrument_id
     ORDER BY instrument_id`,
  );
  return rows.map((r) => ({
    check: "non_positive_size",
    instrument_id: r.instrument_id,
    count: Number(r.n),
    min_size: r.min_size,
    first_event_time_ms: Number(r.first_ms),
    last_event_time_ms: Number(r.last_ms),
    sample_event_ids: r.samples,
  }));
}
