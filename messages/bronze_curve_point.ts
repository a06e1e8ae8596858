/** `ingestion.curves.v1`: one raw forward-curve point (Bronze). */
import { z } from "zod";
import { CalendarDate, DecimalValue, EventId, EventTime, Name } from "./bronze_fields.ts";

// Field order is the order checked: the first failing field is the one reported.
export const BronzeCurvePoint = z.object({
  event_id: EventId,
  source: Name,
  curve: Name,
  as_of: CalendarDate,
  tenor: Name,
  price: DecimalValue,
  ts: EventTime,
});
/** A validated curve point: `ts` is UTC epoch ms, `price` as given. */
export type BronzeCurvePoint = z.infer<typeof BronzeCurvePoint>;
/** The curve point as it is on the wire. */
export type BronzeCurvePointInput = z.input<typeof BronzeCurvePoint>;
