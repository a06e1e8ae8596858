/**
 * Reference data as normalization sees it: an `instrument_map` or `curve_map` row joined
 * with its instrument or curve, and the narrow synchronous lookup over them. Shared by the
 * normalizers (actors/), which read it, and the cached view in stores/reference_data.ts,
 * which decodes the rows from PostgreSQL with these schemas; tests pass a plain object.
 */
import { z } from "zod";
import { parseDecimal } from "./decimal.ts";

/** An `instrument_map` row joined with its `instruments` row (enrichment may be null). */
export const InstrumentRef = z.object({
  instrument_id: z.string(),
  /**
   * `price_multiplier` as exact decimal text (PostgreSQL numeric). numeric allows NaN and
   * Infinity; such a mapping cannot price anything, so it does not decode.
   */
  price_multiplier: z.string().refine((v) => parseDecimal(v) !== undefined, {
    message: "price_multiplier is not a finite decimal",
  }),
  commodity: z.string().nullable(),
  region: z.string().nullable(),
  currency: z.string().nullable(),
  unit: z.string().nullable(),
});
export type InstrumentRef = z.infer<typeof InstrumentRef>;

/** A `curve_map` row joined with its `curves` row. */
export const CurveRef = z.object({
  curve_id: z.string(),
  commodity: z.string().nullable(),
  region: z.string().nullable(),
  currency: z.string().nullable(),
  unit: z.string().nullable(),
});
export type CurveRef = z.infer<typeof CurveRef>;

export interface ReferenceLookup {
  instrument(source: string, symbol: string): InstrumentRef | undefined;
  curve(source: string, curve: string): CurveRef | undefined;
}
