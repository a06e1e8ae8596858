import assert from "node:assert/strict";
import { normalizeCurvePoint } from "./normalize_curve_point.ts";
import type { CurveRef, ReferenceLookup } from "../messages/reference_lookup.ts";

const CURVE: CurveRef = {
  curve_id: "power.de.base.fwd",
  commodity: "power",
  region: "DE",
  currency: "EUR",
  unit: "MWh",
};
const refdata: ReferenceLookup = {
  instrument: () => undefined,
  curve: (source, curve) => source === "eex" && curve === "DE_BASE" ? CURVE : undefined,
};

const point = (overrides: Record<string, unknown> = {}) =>
  new TextEncoder().encode(JSON.stringify({
    event_id: "c-1",
    source: "eex",
    curve: "DE_BASE",
    as_of: "2027-01-15",
    tenor: "2027-Q2",
    price: "-3.10",
    ts: "2027-01-15T18:00:00+01:00",
    ...overrides,
  }));

// Fixtures use 2027 event times with older record timestamps: no skew limit unless tested.
const options = (ingestTimeMs: number) => ({
  ingestTimeMs,
  maxFutureSkewMs: Number.POSITIVE_INFINITY,
});

Deno.test("normalizeCurvePoint enriches a mapped point with canonical price and time", () => {
  const result = normalizeCurvePoint(point(), refdata, options(5));
  assert.deepEqual(result, {
    ok: true,
    event: {
      event_id: "c-1",
      curve_id: "power.de.base.fwd",
      as_of: "2027-01-15",
      tenor: "2027-Q2",
      price: -3.1,
      event_time_ms: Date.UTC(2027, 0, 15, 17),
      source: "eex",
      curve: "DE_BASE",
      commodity: "power",
      region: "DE",
      currency: "EUR",
      unit: "MWh",
      ingest_time_ms: 5,
    },
  });
});

Deno.test("normalizeCurvePoint rejects an unmapped curve as unknown_curve", () => {
  const result = normalizeCurvePoint(point({ curve: "NL_BASE" }), refdata, options(0));
  assert.equal(result.ok, false);
  if (!result.ok) assert.equal(result.rejection.reason, "unknown_curve");
});

Deno.test("normalizeCurvePoint names the first failing field of an invalid payload", () => {
  const cases: [Uint8Array, string][] = [
    [point({ curve: "" }), "curve"],
    [point({ as_of: "2027-13-01" }), "as_of"],
    [point({ as_of: "2027-02-29" }), "as_of"],
    [point({ as_of: "15.01.2027" }), "as_of"],
    [point({ tenor: "" }), "tenor"],
    [point({ price: "1,5" }), "price"],
    [point({ ts: "yesterday" }), "ts"],
  ];
  for (const [value, field] of cases) {
    const result = normalizeCurvePoint(value, refdata, options(0));
    assert.equal(result.ok, false, field);
    if (!result.ok) {
      assert.equal(result.rejection.reason, "invalid_payload");
      assert.ok(result.rejection.message.startsWith(`${field}:`), result.rejection.message);
    }
  }
});

Deno.test("normalizeCurvePoint rejects an event time too far ahead of the record timestamp as ts", () => {
  const recordMs = Date.UTC(2027, 0, 15, 16);
  const result = normalizeCurvePoint(point(), refdata, {
    ingestTimeMs: recordMs,
    maxFutureSkewMs: 60_000,
  });
  assert.equal(result.ok, false);
  if (!result.ok) {
    assert.equal(result.rejection.reason, "invalid_payload");
    assert.match(result.rejection.message, /^ts: \d+ is 3600000 ms ahead of the record timestamp/);
  }
});
