/** `normalized.market.ticks.v1` (key: instrument_id): a canonical, enriched trade. */
import { z } from "zod";

export const NormalizedTick = z.object({
  event_id: z.string().min(1).max(128),
  instrument_id: z.string().min(1),
  event_time_ms: z.number().int(),
  price: z.number().finite(),
  size: z.number().finite().positive(),
  source: z.string(),
  symbol: z.string(),
  commodity: z.string().nullable(),
  region: z.string().nullable(),
  currency: z.string().nullable(),
  unit: z.string().nullable(),
  ingest_time_ms: z.number().int(),
});
export type NormalizedTick = z.infer<typeof NormalizedTick>;

const isString = (v: unknown): v is string => typeof v === "string";
const isNullableString = (v: unknown) => v === null || typeof v === "string";
const isInt = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v);

/**
 * The schema's checks written out by hand, for the hot path: a record that passes is a valid
 * NormalizedTick; one that does not goes through the zod schema for its error (and for the
 * rare shape only zod accepts). Kept in step with `NormalizedTick` by a test.
 */
export function isNormalizedTick(v: unknown): v is NormalizedTick {
  if (typeof v !== "object" || v === null) return false;
  const t = v as Record<string, unknown>;
  return isString(t.event_id) && t.event_id.length >= 1 && t.event_id.length <= 128 &&
    isString(t.instrument_id) && t.instrument_id.length >= 1 &&
    isInt(t.event_time_ms) &&
    typeof t.price === "number" && Number.isFinite(t.price) &&
    typeof t.size === "number" && Number.isFinite(t.size) && t.size > 0 &&
    isString(t.source) && isString(t.symbol) &&
    isNullableString(t.commodity) && isNullableString(t.region) &&
    isNullableString(t.currency) && isNullableString(t.unit) &&
    isInt(t.ingest_time_ms);
}
