/**
 * Bronze curve point bytes -> canonical, enriched `NormalizedCurvePoint`, or a rejection
 * for the DLQ. Pure: reference data comes in through a lookup.
 */
import { BronzeCurvePoint } from "../messages/bronze_curve_point.ts";
import { decodeJson } from "../messages/decode.ts";
import type { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import { canonicalPrice, futureSkewRejection, type NormalizeOptions } from "./normalize_tick.ts";
import { invalidPayload, type NormalizeResult, rejected } from "./normalize_result.ts";
import type { ReferenceLookup } from "../messages/reference_lookup.ts";

export function normalizeCurvePoint(
  value: Uint8Array | null,
  refdata: ReferenceLookup,
  options: NormalizeOptions,
): NormalizeResult<NormalizedCurvePoint> {
  const decoded = decodeJson(BronzeCurvePoint, value);
  if (!decoded.ok) return invalidPayload(decoded.field, decoded.message);
  const point = decoded.value;
  const skew = futureSkewRejection(point.ts, options);
  if (skew !== undefined) return { ok: false, rejection: skew };
  const ref = refdata.curve(point.source, point.curve);
  if (ref === undefined) {
    return rejected(
      "unknown_curve",
      `no curve_map entry for source=${point.source} curve=${point.curve}`,
    );
  }
  // curve_map has no multiplier: the price is canonical as given (decimal text -> double).
  const price = canonicalPrice(point.price, "1");
  if (price === undefined) {
    return rejected("invalid_payload", `price: ${point.price} is not a finite number`);
  }
  return {
    ok: true,
    event: {
      event_id: point.event_id,
      curve_id: ref.curve_id,
      as_of: point.as_of,
      tenor: point.tenor,
      price,
      event_time_ms: point.ts,
      source: point.source,
      curve: point.curve,
      commodity: ref.commodity,
      region: ref.region,
      currency: ref.currency,
      unit: ref.unit,
      ingest_time_ms: options.ingestTimeMs,
    },
  };
}
