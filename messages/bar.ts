/** `aggregation.bars.v1` (key: instrument_id) and `projection:bar:*`: one OHLCV bar. */
import { z } from "zod";

export const Bar = z.object({
  instrument_id: z.string(),
  resolution: z.string(),
  start_ms: z.number().int(),
  end_ms: z.number().int(),
  open: z.number(),
  high: z.number(),
  low: z.number(),
  close: z.number(),
  volume: z.number(),
  vwap: z.number(),
  count: z.number().int(),
  final: z.boolean(),
  version: z.number().int(),
});
export type Bar = z.infer<typeof Bar>;
