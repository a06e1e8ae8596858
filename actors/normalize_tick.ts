/**
 * Bronze tick bytes -> canonical, enriched `NormalizedTick`, or a rejection for the DLQ.
 * Pure: reference data comes in through a lookup, the record timestamp as an argument.
 */
import { BronzeTick } from "../messages/bronze_tick.ts";
import { decodeJson } from "../messages/decode.ts";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { decimalToNumber, multiplyDecimals, parseDecimal } from "../messages/decimal.ts";
import {
  invalidPayload,
  type NormalizeResult,
  rejected,
  type Rejection,
} from "./normalize_result.ts";
import type { ReferenceLookup } from "../messages/reference_lookup.ts";

export interface NormalizeOptions {
  /** When the record entered the platform (its Bronze Kafka timestamp): deterministic. */
  ingestTimeMs: number;
  /**
   * How far an event time may be ahead of `ingestTimeMs`; beyond it the record is
   * `invalid_payload` (field `ts`), so one bad upstream clock cannot push the watermark
   * into the future.
   */
  maxFutureSkewMs: number;
}

export function normalizeTick(
  value: Uint8Array | null,
  refdata: ReferenceLookup,
  options: NormalizeOptions,
): NormalizeResult<NormalizedTick> {
  const decoded = decodeJson(BronzeTick, value);
  if (!decoded.ok) return invalidPayload(decoded.field, decoded.message);
  const tick = decoded.value;
  const skew = futureSkewRejection(tick.ts, options);
  if (skew !== undefined) return { ok: false, rejection: skew };
  const ref = refdata.instrument(tick.source, tick.symbol);
  if (ref === undefined) {
    return rejected(
      "unknown_instrument",
      `no instrument_map entry for source=${tick.source} symbol=${tick.symbol}`,
    );
  }
  const price = canonicalPrice(tick.price, ref.price_multiplier);
  if (price === undefined) {
    return rejected(
      "invalid_payload",
      `price: ${tick.price} x ${ref.price_multiplier} is not a finite number`,
    );
  }
  return {
    ok: true,
    event: {
      event_id: tick.event_id,
      instrument_id: ref.instrument_id,
      event_time_ms: tick.ts,
      price,
      size: tick.size,
      source: tick.source,
      symbol: tick.symbol,
      commodity: ref.commodity,
      region: ref.region,
      currency: ref.currency,
      unit: ref.unit,
      ingest_time_ms: options.ingestTimeMs,
    },
  };
}

/** A `ts` rejection when the event time is too far ahead of the record timestamp. */
export function futureSkewRejection(
  eventTimeMs: number,
  options: NormalizeOptions,
): Rejection | undefined {
  const aheadMs = eventTimeMs - options.ingestTimeMs;
  if (aheadMs <= options.maxFutureSkewMs) return undefined;
  return {
    reason: "invalid_payload",
    message: `ts: ${eventTimeMs} is ${aheadMs} ms ahead of the record timestamp ` +
      `${options.ingestTimeMs} (more than DATA_PROC_MAX_FUTURE_SKEW_MS=${options.maxFutureSkewMs})`,
  };
}

/** `price x multiplier`, exact in decimal, then the nearest double; undefined if not finite. */
export function canonicalPrice(price: string | number, multiplier: string): number | undefined {
  const p = parseDecimal(price);
  const k = parseDecimal(multiplier);
  if (p === undefined || k === undefined) return undefined;
  const result = decimalToNumber(multiplyDecimals(p, k));
  return Number.isFinite(result) ? result : undefined;
}
