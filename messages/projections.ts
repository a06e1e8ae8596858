/** Projections of CONTRACT.md: Redis values and `projection.*` topic events. */
import { z } from "zod";

/** `projection:latest:{instrument_id}` and `projection.latest_price.v1`. */
export const LatestPrice = z.object({
  instrument_id: z.string(),
  price: z.number(),
  size: z.number(),
  event_time_ms: z.number().int(),
  event_id: z.string(),
  version: z.number().int(),
});
export type LatestPrice = z.infer<typeof LatestPrice>;

export const CurveSnapshotPoint = z.object({
  tenor: z.string(),
  price: z.number(),
  event_time_ms: z.number().int(),
});

/** `projection:curve:{curve_id}` and `projection.curve_snapshot.v1`. */
export const CurveSnapshot = z.object({
  curve_id: z.string(),
  as_of: z.string(),
  points: z.array(CurveSnapshotPoint),
  version: z.number().int(),
});
export type CurveSnapshot = z.infer<typeof CurveSnapshot>;
