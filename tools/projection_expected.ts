/**
 * What the Redis projections should hold, read from ClickHouse: the latest tick per
 * instrument (silver.ticks FINAL, greatest (event_time_ms, event_id)), the newest bar per
 * instrument and resolution (gold.bars FINAL), and each curve's snapshot for its newest
 * as_of (gold.curves FINAL). Values come without `version` (`goldVersion` is separate).
 */
import type { Bar } from "../messages/bar.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import { queryRows } from "../stores/clickhouse.ts";
import { sqlIdentifier } from "../stores/sql.ts";

export interface ExpectedLatest {
  value: {
    instrument_id: string;
    price: number;
    size: number;
    event_time_ms: number;
    event_id: string;
  };
  goldVersion: number;
}

export interface ExpectedBar {
  value: Omit<Bar, "version">;
  goldVersion: number;
}

export interface ExpectedCurve {
  value: {
    curve_id: string;
    as_of: string;
    points: { tenor: string; price: number; event_time_ms: number }[];
  };
  goldVersion: number;
}

/** Latest tick per instrument, keyed by instrument_id. */
export async function expectedLatest(
  ch: ClickHouseClient,
  silverDb: string,
): Promise<Map<string, ExpectedLatest>> {
  const rows = await queryRows<{
    instrument_id: string;
    p: number;
    sz: number;
    t: string;
    eid: string;
  }>(
    ch,
    `SELECT instrument_id,
       argMax(price, (event_time_ms, event_id)) AS p,
       argMax(size, (event_time_ms, event_id)) AS sz,
       max(event_time_ms) AS t,
       argMax(event_id, (event_time_ms, event_id)) AS eid
     FROM ${sqlIdentifier(silverDb)}.ticks FINAL
     GROUP BY instrument_id`,
  );
  return new Map(rows.map((r) => [r.instrument_id, {
    value: {
      instrument_id: r.instrument_id,
      price: r.p,
      size: r.sz,
      event_time_ms: Number(r.t),
      event_id: r.eid,
    },
    goldVersion: 0,
  }]));
}

/** Newest bar per (resolution, instrument), keyed by `${resolution}:${instrument_id}`. */
export async function expectedBars(
  ch: ClickHouseClient,
  goldDb: string,
): Promise<Map<string, ExpectedBar>> {
  const rows = await queryRows<{
    instrument_id: string;
    resolution: string;
    s: string;
    e: string;
    o: number;
    h: number;
    l: number;
    c: number;
    vol: number;
    vw: number;
    cnt: string;
    fin: number;
    ver: string;
  }>(
    ch,
    `SELECT instrument_id, resolution, max(start_ms) AS s,
       argMax(end_ms, start_ms) AS e, argMax(open, start_ms) AS o,
       argMax(high, start_ms) AS h, argMax(low, start_ms) AS l,
       argMax(close, start_ms) AS c, argMax(volume, start_ms) AS vol,
       argMax(vwap, start_ms) AS vw, argMax(count, start_ms) AS cnt,
       argMax(final, start_ms) AS fin, argMax(version, start_ms) AS ver
     FROM ${sqlIdentifier(goldDb)}.bars FINAL
     GROUP BY instrument_id, resolution`,
  );
  return new Map(rows.map((r) => [`${r.resolution}:${r.instrument_id}`, {
    value: {
      instrument_id: r.instrument_id,
      resolution: r.resolution,
      start_ms: Number(r.s),
      end_ms: Number(r.e),
      open: r.o,
      high: r.h,
      low: r.l,
      close: r.c,
      volume: r.vol,
      vwap: r.vw,
      count: Number(r.cnt),
      final: r.fin === 1,
    },
    goldVersion: Number(r.ver),
  }]));
}

/** Code-unit order, the same on every machine (unlike localeCompare). */
export function compareTenors(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Snapshot of each curve's newest as_of, keyed by curve_id; points sorted by tenor. */
export async function expectedCurves(
  ch: ClickHouseClient,
  goldDb: string,
): Promise<Map<string, ExpectedCurve>> {
  const table = `${sqlIdentifier(goldDb)}.curves`;
  const rows = await queryRows<{
    curve_id: string;
    d: string;
    tenors: string[];
    prices: number[];
    times: string[];
    ver: string;
  }>(
    ch,
    `SELECT curve_id, toString(as_of) AS d, groupArray(tenor) AS tenors,
       groupArray(price) AS prices, groupArray(event_time_ms) AS times, max(version) AS ver
     FROM ${table} FINAL
     WHERE (curve_id, as_of) IN (SELECT curve_id, max(as_of) FROM ${table} GROUP BY curve_id)
     GROUP BY curve_id, as_of`,
  );
  return new Map(rows.map((r) => {
    const points = r.tenors.map((tenor, i) => ({
      tenor,
      price: r.prices[i]!,
      event_time_ms: Number(r.times[i]),
    })).sort((a, b) => compareTenors(a.tenor, b.tenor));
    return [r.curve_id, {
      value: { curve_id: r.curve_id, as_of: r.d, points },
      goldVersion: Number(r.ver),
    }];
  }));
}
