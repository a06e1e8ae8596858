/**
 * What the instrument kind's tests and its hot-path bench share: an hour-aligned start, the
 * window and lateness settings they run with, a canonical tick and a partition clock.
 */
import type { NormalizedTick } from "../../../messages/normalized_tick.ts";
import type { EventClock } from "../../event_clock.ts";
import type { InstrumentParams } from "./aggregate.ts";

export const SEC = 1_000;
export const MIN = 60_000;
export const HOUR = 3_600_000;
/** 2027-01-15T10:00:00Z: aligned to the minute and the hour. */
export const T0 = Date.UTC(2027, 0, 15, 10, 0, 0);
export const LATENESS = 5 * SEC;
export const PARAMS: InstrumentParams = {
  windows: [{ name: "1m", ms: MIN }, { name: "1h", ms: HOUR }],
  allowedLatenessMs: LATENESS,
};
export const ID = "INST-0001";

/** A canonical tick of `instrument` (ID by default). */
export function tick(
  event_id: string,
  event_time_ms: number,
  price: number,
  size = 1,
  instrument = ID,
): NormalizedTick {
  return {
    event_id,
    instrument_id: instrument,
    event_time_ms,
    price,
    size,
    source: "eex",
    symbol: "DEBY",
    commodity: "power",
    region: "DE",
    currency: "EUR",
    unit: "MWh",
    ingest_time_ms: 0,
  };
}

/** The partition clock: `clockMs` (null: undefined) and, while every source is idle, quietMs. */
export function at(clockMs: number | null, quietMs: number | null = null): EventClock {
  return { clockMs, quietMs };
}
