/** The curve kind: the forward-curve snapshot of the newest as_of, from normalized points. */
import { NormalizedCurvePoint } from "../../../messages/normalized_curve_point.ts";
import { curveAdapter } from "./machine.ts";
import type { ActorKindDefinition } from "../kind.ts";

export const curveKind: ActorKindDefinition<NormalizedCurvePoint> = {
  name: "curve",
  inputTopic: (topics) => topics.normalizedCurves,
  schema: NormalizedCurvePoint,
  keyOf: (point) => point.curve_id,
  adapter: () => curveAdapter(),
  projectionKeys: (key) => [`projection:curve:${key}`],
  gold: { table: "curves", idColumn: "curve_id", timeColumn: "event_time_ms" },
  replacedFrom: (fromTimeMs) => Math.max(0, fromTimeMs),
  goldComparison: {
    columns: "toString(as_of) AS as_of, tenor, price",
    idOf: (row) => `${row.as_of}|${row.tenor}`,
    valuesOf: (row) => ({ price: Number(row.price) }),
  },
};
