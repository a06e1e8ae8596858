/** `ingestion.market.ticks.v1`: one raw trade from a venue or vendor (Bronze). */
import { z } from "zod";
import { DecimalValue, EventId, EventTime, Name, PositiveQuantity } from "./bronze_fields.ts";

// Field order is the order checked: the first failing field is the one reported.
export const BronzeTick = z.object({
  event_id: EventId,
  source: Name,
  symbol: Name,
  ts: EventTime,
  price: DecimalValue,
  size: PositiveQuantity,
});
/** A validated tick: `ts` is UTC epoch ms, `size` a number, `price` as given. */
export type BronzeTick = z.infer<typeof BronzeTick>;
/** The tick as it is on the wire. */
export type BronzeTickInput = z.input<typeof BronzeTick>;
