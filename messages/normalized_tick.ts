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
