/**
 * What normalization needs from reference data, as a narrow synchronous lookup: the
 * cached view in `stores/reference_data.ts` implements it, tests pass a plain object.
 */

/** An `instrument_map` row joined with its `instruments` row (enrichment may be null). */
export interface InstrumentRef {
  instrument_id: string;
  /** `price_multiplier` as exact decimal text (PostgreSQL numeric). */
  price_multiplier: string;
  commodity: string | null;
  region: string | null;
  currency: string | null;
  unit: string | null;
}

/** A `curve_map` row joined with its `curves` row. */
export interface CurveRef {
  curve_id: string;
  commodity: string | null;
  region: string | null;
  currency: string | null;
  unit: string | null;
}

export interface ReferenceLookup {
  instrument(source: string, symbol: string): InstrumentRef | undefined;
  curve(source: string, curve: string): CurveRef | undefined;
}
