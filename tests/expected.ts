/**
 * An independent oracle for the "Aggregation semantics" of `/work/shared/CONTRACT.md`, and
 * deterministic event generators for tests. It imports nothing from `actors/`: it restates
 * the rules plainly (filter, group, sort, fold) so that a test can compute the expected
 * Redis / ClickHouse / Kafka contents from the input events alone.
 *
 * ## Exported API
 *
 * `expectedInstruments(ticks, { windows, allowedLatenessMs, watermarksAt? })`
 *   -> `ExpectedInstruments`
 *   `ticks` are normalized ticks in arrival (partition) order; several instruments may be
 *   mixed. Event time is kept by one source's watermarks (CONTRACT.md "Event time"):
 *   `watermarksAt` lists arrival indexes before which a watermark covering every earlier
 *   tick was written, and one more follows the last tick. The clock at an arrival is the
 *   greatest event time of the ticks before the latest such watermark (none yet: no clock).
 *   Rules applied, per arrival:
 *   - an event_id already counted is a duplicate and is ignored (ids are global, as the
 *     contract makes them unique per trade);
 *   - otherwise, an event whose time is older than clock - allowedLatenessMs is late: not
 *     counted (`late_event` in the DLQ);
 *   - otherwise it is counted.
 *   Results:
 *   - `counted`: the counted ticks in arrival order; `lateIndexes` / `duplicateIndexes`:
 *     positions in `ticks` of the late arrivals and of the repeats of counted events. An
 *     implementation that forgets ids older than clock - lateness may report such an old
 *     repeat as late instead: both are "not counted", so compare rejections as
 *     lateIndexes <= rejected <= lateIndexes + duplicateIndexes.
 *   - `bars`: every bar, keyed by `barKey(instrument_id, resolution, start_ms)`, with
 *     `{instrument_id, resolution, start_ms, end_ms, open, high, low, close, volume, vwap,
 *     count, finalByClock}`; open/close by (event_time_ms, event_id) order, event_ids
 *     compared as JS strings (`<`). `finalByClock` is the event-time rule alone
 *     (final clock >= end_ms + lateness); quiet close may finalise more bars, so tests
 *     with idle sources should not compare `final` with it blindly.
 *   - `newestBars`: per `${resolution}|${instrument_id}` (as in `projection:bar:*`), the bar
 *     with the greatest start_ms.
 *   - `latest`: per instrument_id, `{instrument_id, price, size, event_time_ms, event_id}` of
 *     the counted event with the greatest (event_time_ms, event_id).
 *   - `clockMs`: the clock after the final watermark (the greatest event time of all ticks).
 *
 * `expectedCurves(points)` -> `ExpectedCurves`
 *   `points` in arrival order. Each event_id is counted once; there is no lateness for
 *   curves. Per (curve_id, as_of, tenor) the point with the greatest
 *   (event_time_ms, event_id) wins.
 *   - `rows`: per `curveRowKey(curve_id, as_of, tenor)` the winning
 *     `{curve_id, as_of, tenor, price, event_time_ms, event_id}` (for `gold.curves`).
 *   - `snapshots`: per curve_id, `{curve_id, as_of, points: [{tenor, price, event_time_ms}]}`
 *     for the newest as_of seen (`YYYY-MM-DD` compares as a string), points sorted by tenor
 *     (JS string order), as in `projection:curve:*` minus `version`.
 *
 * `compareFloat(a, b)` -> boolean: true when a and b agree within a relative 1e-9
 *   (of the larger magnitude, floored at 1 so values near zero compare absolutely).
 *   Sums taken in different orders differ in the last bits: compare floats with this.
 * `barDifferences(actual, expected)` -> string[]: the fields of a bar (OHLC, volume,
 *   vwap with `compareFloat`; start_ms, end_ms, count exactly) that differ, described.
 *
 * `seededRandom(seed)` -> () => number in [0, 1): the generators' PRNG (mulberry32), for
 *   tests that need their own reproducible choices (batch sizes, pauses).
 * `generateTicks(options)` -> NormalizedTick[] (arrival order), deterministic per seed:
 *   `{seed, instruments, count, startMs, spreadMs, outOfOrderRatio, duplicateRatio,
 *   skew?, maxDelayMs?}`. `count` arrivals in total, of which about `duplicateRatio` are
 *   redeliveries (exact copies but for ingest_time_ms) of earlier arrivals (half of them
 *   of the last 200, half of any). Event times
 *   advance from startMs to startMs + spreadMs over the stream; about `outOfOrderRatio` of
 *   the events are delayed, their time set back by up to `maxDelayMs` (default 30_000).
 *   Instrument ids `INST-0001`..; `skew` (>= 0, default 0 = uniform) is a Zipf exponent
 *   over instruments (INST-0001 the hottest). Prices have two decimals and may be negative;
 *   sizes are > 0 with one decimal; event_ids are unique random-looking strings (their
 *   string order is unrelated to time order, so ties in time exercise the id ordering).
 * `generateCurvePoints(options)` -> NormalizedCurvePoint[] (arrival order):
 *   `{seed, curves, count, startMs, spreadMs, asOfs, tenors, outOfOrderRatio,
 *   duplicateRatio, maxDelayMs?}`. Curve ids `CURVE-001`..; `asOfs` trading dates starting
 *   on the UTC date of startMs, advancing over the stream; about `outOfOrderRatio` of the
 *   points carry an older as_of and a delayed event time; tenors `2027-01`.. (`tenors` of
 *   them, monthly).
 */
import type { Bar } from "../messages/bar.ts";
import { zipfPicker } from "../tools/bench_events.ts";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import type { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";

// ---------------------------------------------------------------------------------------
// Instruments

export interface ExpectedWindow {
  name: string;
  ms: number;
}

export interface ExpectedInstrumentOptions {
  windows: readonly ExpectedWindow[];
  allowedLatenessMs: number;
  /** Arrival indexes before which a watermark covering all earlier ticks was written. */
  watermarksAt?: readonly number[];
}

export type ExpectedBar = Omit<Bar, "final" | "version"> & {
  /** Final by the event-time rule alone: final clock >= end_ms + lateness. */
  finalByClock: boolean;
};

export interface ExpectedLatest {
  instrument_id: string;
  price: number;
  size: number;
  event_time_ms: number;
  event_id: string;
}

export interface ExpectedInstruments {
  counted: NormalizedTick[];
  lateIndexes: number[];
  duplicateIndexes: number[];
  bars: Map<string, ExpectedBar>;
  newestBars: Map<string, ExpectedBar>;
  latest: Map<string, ExpectedLatest>;
  clockMs: number | null;
}

export function barKey(instrumentId: string, resolution: string, startMs: number): string {
  return `${instrumentId}|${resolution}|${startMs}`;
}

/** Orders by (event_time_ms, event_id), event_ids as JS strings. */
function byTimeThenId(
  a: { event_time_ms: number; event_id: string },
  b: { event_time_ms: number; event_id: string },
): number {
  if (a.event_time_ms !== b.event_time_ms) return a.event_time_ms - b.event_time_ms;
  return a.event_id < b.event_id ? -1 : a.event_id > b.event_id ? 1 : 0;
}

function checkInstrumentOptions(options: ExpectedInstrumentOptions): void {
  if (options.windows.length === 0) {
    throw new RangeError("Cannot compute expected bars: windows must not be empty");
  }
  for (const w of options.windows) {
    if (!Number.isInteger(w.ms) || w.ms <= 0) {
      throw new RangeError(`Cannot compute expected bars: window ${w.name} ms must be > 0`);
    }
  }
  if (!(options.allowedLatenessMs >= 0)) {
    throw new RangeError(
      `Cannot compute expected bars: allowedLatenessMs must be >= 0, got ${options.allowedLatenessMs}`,
    );
  }
}

export function expectedInstruments(
  ticks: readonly NormalizedTick[],
  options: ExpectedInstrumentOptions,
): ExpectedInstruments {
  checkInstrumentOptions(options);

  // 1. Which arrivals count: once per event_id, and not older than clock - lateness.
  const watermarks = new Set(options.watermarksAt ?? []);
  const countedIds = new Set<string>();
  const counted: NormalizedTick[] = [];
  const lateIndexes: number[] = [];
  const duplicateIndexes: number[] = [];
  let seenMax = -Infinity;
  let clock: number | null = null;
  ticks.forEach((tick, index) => {
    if (watermarks.has(index) && index > 0) clock = seenMax;
    seenMax = Math.max(seenMax, tick.event_time_ms);
    if (countedIds.has(tick.event_id)) {
      duplicateIndexes.push(index);
      return;
    }
    if (clock !== null && tick.event_time_ms < clock - options.allowedLatenessMs) {
      lateIndexes.push(index);
      return;
    }
    countedIds.add(tick.event_id);
    counted.push(tick);
  });
  const clockMs = ticks.length > 0 ? seenMax : null;

  // 2. Group the counted events by bar, sort each group by (time, id), fold.
  const groups = new Map<
    string,
    { window: ExpectedWindow; start: number; ticks: NormalizedTick[] }
  >();
  for (const tick of counted) {
    for (const window of options.windows) {
      const start = Math.floor(tick.event_time_ms / window.ms) * window.ms;
      const key = barKey(tick.instrument_id, window.name, start);
      let group = groups.get(key);
      if (group === undefined) {
        group = { window, start, ticks: [] };
        groups.set(key, group);
      }
      group.ticks.push(tick);
    }
  }
  const bars = new Map<string, ExpectedBar>();
  const newestBars = new Map<string, ExpectedBar>();
  for (const [key, group] of groups) {
    const sorted = [...group.ticks].sort(byTimeThenId);
    const first = sorted[0]!;
    const last = sorted[sorted.length - 1]!;
    const volume = sorted.reduce((sum, t) => sum + t.size, 0);
    const pv = sorted.reduce((sum, t) => sum + t.price * t.size, 0);
    const end = group.start + group.window.ms;
    const bar: ExpectedBar = {
      instrument_id: first.instrument_id,
      resolution: group.window.name,
      start_ms: group.start,
      end_ms: end,
      open: first.price,
      high: sorted.reduce((max, t) => Math.max(max, t.price), -Infinity),
      low: sorted.reduce((min, t) => Math.min(min, t.price), Infinity),
      close: last.price,
      volume,
      vwap: pv / volume,
      count: sorted.length,
      finalByClock: clockMs !== null && clockMs >= end + options.allowedLatenessMs,
    };
    bars.set(key, bar);
    const newestKey = `${bar.resolution}|${bar.instrument_id}`;
    const newest = newestBars.get(newestKey);
    if (newest === undefined || newest.start_ms < bar.start_ms) newestBars.set(newestKey, bar);
  }

  // 3. Latest per instrument: the greatest (time, id) among the counted events.
  const latest = new Map<string, ExpectedLatest>();
  for (const tick of counted) {
    const current = latest.get(tick.instrument_id);
    if (current === undefined || byTimeThenId(current, tick) < 0) {
      latest.set(tick.instrument_id, {
        instrument_id: tick.instrument_id,
        price: tick.price,
        size: tick.size,
        event_time_ms: tick.event_time_ms,
        event_id: tick.event_id,
      });
    }
  }

  return { counted, lateIndexes, duplicateIndexes, bars, newestBars, latest, clockMs };
}

// ---------------------------------------------------------------------------------------
// Curves

export interface ExpectedCurveRow {
  curve_id: string;
  as_of: string;
  tenor: string;
  price: number;
  event_time_ms: number;
  event_id: string;
}

export interface ExpectedCurveSnapshot {
  curve_id: string;
  as_of: string;
  points: { tenor: string; price: number; event_time_ms: number }[];
}

export interface ExpectedCurves {
  counted: NormalizedCurvePoint[];
  duplicateIndexes: number[];
  rows: Map<string, ExpectedCurveRow>;
  snapshots: Map<string, ExpectedCurveSnapshot>;
}

export function curveRowKey(curveId: string, asOf: string, tenor: string): string {
  return `${curveId}|${asOf}|${tenor}`;
}

function byString(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function expectedCurves(points: readonly NormalizedCurvePoint[]): ExpectedCurves {
  const seen = new Set<string>();
  const counted: NormalizedCurvePoint[] = [];
  const duplicateIndexes: number[] = [];
  points.forEach((p, index) => {
    if (seen.has(p.event_id)) {
      duplicateIndexes.push(index);
    } else {
      seen.add(p.event_id);
      counted.push(p);
    }
  });

  const groups = new Map<string, NormalizedCurvePoint[]>();
  for (const p of counted) {
    const key = curveRowKey(p.curve_id, p.as_of, p.tenor);
    const group = groups.get(key) ?? [];
    group.push(p);
    groups.set(key, group);
  }
  const rows = new Map<string, ExpectedCurveRow>();
  for (const [key, group] of groups) {
    const sorted = [...group].sort(byTimeThenId);
    const w = sorted[sorted.length - 1]!;
    rows.set(key, {
      curve_id: w.curve_id,
      as_of: w.as_of,
      tenor: w.tenor,
      price: w.price,
      event_time_ms: w.event_time_ms,
      event_id: w.event_id,
    });
  }

  const newestAsOf = new Map<string, string>();
  for (const p of counted) {
    const current = newestAsOf.get(p.curve_id);
    if (current === undefined || current < p.as_of) newestAsOf.set(p.curve_id, p.as_of);
  }
  const snapshots = new Map<string, ExpectedCurveSnapshot>();
  for (const [curveId, asOf] of newestAsOf) {
    const snapshotRows = [...rows.values()]
      .filter((r) => r.curve_id === curveId && r.as_of === asOf)
      .sort((a, b) => byString(a.tenor, b.tenor));
    snapshots.set(curveId, {
      curve_id: curveId,
      as_of: asOf,
      points: snapshotRows.map((r) => ({
        tenor: r.tenor,
        price: r.price,
        event_time_ms: r.event_time_ms,
      })),
    });
  }
  return { counted, duplicateIndexes, rows, snapshots };
}

// ---------------------------------------------------------------------------------------
// Comparison helpers

/** True when a and b agree within a relative 1e-9 (floored at 1: absolute near zero). */
export function compareFloat(a: number, b: number): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}

type BarLike = Pick<
  Bar,
  "start_ms" | "end_ms" | "open" | "high" | "low" | "close" | "volume" | "vwap" | "count"
>;

/** The fields of `actual` that differ from `expected`, each described; empty when equal. */
export function barDifferences(actual: BarLike, expected: BarLike): string[] {
  const differences: string[] = [];
  for (const field of ["start_ms", "end_ms", "count"] as const) {
    if (actual[field] !== expected[field]) {
      differences.push(`${field}: got ${actual[field]}, expected ${expected[field]}`);
    }
  }
  for (const field of ["open", "high", "low", "close", "volume", "vwap"] as const) {
    if (!compareFloat(actual[field], expected[field])) {
      differences.push(`${field}: got ${actual[field]}, expected ${expected[field]}`);
    }
  }
  return differences;
}

// ---------------------------------------------------------------------------------------
// Generators

/** mulberry32: a small, fast, seedable PRNG giving floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

/** Half the repeats come from the last 200 arrivals (a redelivery), half from anywhere. */
function pickEarlier(random: () => number, length: number): number {
  const from = random() < 0.5 ? Math.max(0, length - 200) : 0;
  return from + Math.floor(random() * (length - from));
}

function randomId(random: () => number, serial: number): string {
  const hex = Math.floor(random() * 0x100000000).toString(16).padStart(8, "0");
  return `${hex}-${serial}`;
}

function checkGeneratorOptions(
  what: string,
  options: { count: number; spreadMs: number; outOfOrderRatio: number; duplicateRatio: number },
  sizes: Record<string, number>,
): void {
  for (const [name, value] of Object.entries(sizes)) {
    if (!Number.isInteger(value) || value <= 0) {
      throw new RangeError(`Cannot generate ${what}: ${name} must be an integer > 0, got ${value}`);
    }
  }
  if (!Number.isInteger(options.count) || options.count < 0) {
    throw new RangeError(`Cannot generate ${what}: count must be an integer >= 0`);
  }
  if (!(options.spreadMs >= 0)) {
    throw new RangeError(`Cannot generate ${what}: spreadMs must be >= 0`);
  }
  for (const name of ["outOfOrderRatio", "duplicateRatio"] as const) {
    const r = options[name];
    if (!(r >= 0 && r < 1)) {
      throw new RangeError(`Cannot generate ${what}: ${name} must be in [0, 1), got ${r}`);
    }
  }
}

export interface GenerateTicksOptions {
  seed: number;
  instruments: number;
  count: number;
  startMs: number;
  spreadMs: number;
  outOfOrderRatio: number;
  duplicateRatio: number;
  /** Zipf exponent over instruments; 0 (default) is uniform. */
  skew?: number;
  /** How far back a delayed event's time may be set; default 30_000. */
  maxDelayMs?: number;
}

export function generateTicks(options: GenerateTicksOptions): NormalizedTick[] {
  checkGeneratorOptions("ticks", options, { instruments: options.instruments });
  const random = seededRandom(options.seed);
  const pick = zipfPicker(options.instruments, options.skew ?? 0, random);
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const width = Math.max(4, String(options.instruments).length);
  // Each instrument trades around its own level, some of them below zero.
  const levels = Array.from({ length: options.instruments }, () => Math.round(random() * 200) - 50);
  const out: NormalizedTick[] = [];
  for (let i = 0; i < options.count; i++) {
    const ingest = options.startMs +
      Math.floor((i * options.spreadMs) / Math.max(1, options.count));
    if (out.length > 0 && random() < options.duplicateRatio) {
      const original = out[pickEarlier(random, out.length)]!;
      out.push({ ...original, ingest_time_ms: ingest });
      continue;
    }
    const k = pick();
    const delayed = random() < options.outOfOrderRatio;
    const eventTime = delayed ? ingest - Math.floor(random() * (maxDelayMs + 1)) : ingest;
    const price = Math.round((levels[k]! + (random() - 0.5) * 20) * 100) / 100;
    const size = (1 + Math.floor(random() * 100)) / 10;
    out.push({
      event_id: `t-${randomId(random, i)}`,
      instrument_id: `INST-${pad(k + 1, width)}`,
      event_time_ms: eventTime,
      price,
      size,
      source: "gen",
      symbol: `SYM-${pad(k + 1, width)}`,
      commodity: "power",
      region: "DE",
      currency: "EUR",
      unit: "MWh",
      ingest_time_ms: ingest,
    });
  }
  return out;
}

export interface GenerateCurvePointsOptions {
  seed: number;
  curves: number;
  count: number;
  startMs: number;
  spreadMs: number;
  /** Number of trading dates over the stream (one per day from startMs's UTC date). */
  asOfs: number;
  /** Number of monthly tenors from 2027-01. */
  tenors: number;
  outOfOrderRatio: number;
  duplicateRatio: number;
  maxDelayMs?: number;
}

export function generateCurvePoints(options: GenerateCurvePointsOptions): NormalizedCurvePoint[] {
  checkGeneratorOptions("curve points", options, {
    curves: options.curves,
    asOfs: options.asOfs,
    tenors: options.tenors,
  });
  const random = seededRandom(options.seed);
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const width = Math.max(3, String(options.curves).length);
  const firstDay = Math.floor(options.startMs / 86_400_000) * 86_400_000;
  const asOfDate = (n: number) => new Date(firstDay + n * 86_400_000).toISOString().slice(0, 10);
  const tenorName = (n: number) => `${2027 + Math.floor(n / 12)}-${pad((n % 12) + 1, 2)}`;
  const out: NormalizedCurvePoint[] = [];
  for (let i = 0; i < options.count; i++) {
    const ingest = options.startMs +
      Math.floor((i * options.spreadMs) / Math.max(1, options.count));
    if (out.length > 0 && random() < options.duplicateRatio) {
      const original = out[pickEarlier(random, out.length)]!;
      out.push({ ...original, ingest_time_ms: ingest });
      continue;
    }
    const c = Math.floor(random() * options.curves);
    const current = Math.floor((i * options.asOfs) / Math.max(1, options.count));
    const delayed = random() < options.outOfOrderRatio;
    const asOf = delayed ? Math.floor(random() * (current + 1)) : current;
    const eventTime = delayed ? ingest - Math.floor(random() * (maxDelayMs + 1)) : ingest;
    const tenor = Math.floor(random() * options.tenors);
    out.push({
      event_id: `c-${randomId(random, i)}`,
      curve_id: `CURVE-${pad(c + 1, width)}`,
      as_of: asOfDate(asOf),
      tenor: tenorName(tenor),
      price: Math.round((40 + tenor + (random() - 0.5) * 30) * 100) / 100,
      event_time_ms: eventTime,
      source: "gen",
      curve: `VC-${pad(c + 1, width)}`,
      commodity: "power",
      region: "DE",
      currency: "EUR",
      unit: "MWh",
      ingest_time_ms: ingest,
    });
  }
  return out;
}
