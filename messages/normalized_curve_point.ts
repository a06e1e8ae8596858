/** `normalized.curves.v1` (key: curve_id): a canonical, enriched forward-curve point. */
import { z } from "zod";

export const NormalizedCurvePoint = z.object({
  event_id: z.string().min(1).max(128),
  curve_id: z.string().min(1),
  as_of: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  tenor: z.string().min(1),
  price: z.number().finite(),
  event_time_ms: z.number().int(),
  source: z.string(),
  curve: z.string(),
  commodity: z.string().nullable(),
  region: z.string().nullable(),
  currency: z.string().nullable(),
  unit: z.string().nullable(),
  ingest_time_ms: z.number().int(),
});
export type NormalizedCurvePoint = z.infer<typeof NormalizedCurvePoint>;
