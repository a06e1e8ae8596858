import assert from "node:assert/strict";
import { isNormalizedTick, NormalizedTick } from "./normalized_tick.ts";

const valid = {
  event_id: "e1",
  instrument_id: "I1",
  event_time_ms: 1_700_000_000_000,
  price: -12.5,
  size: 3,
  source: "eex",
  symbol: "DEB",
  commodity: "power",
  region: null,
  currency: "EUR",
  unit: "MWh",
  ingest_time_ms: 1_700_000_000_100,
};

Deno.test("the hand-written tick check agrees with the zod schema", () => {
  const cases: unknown[] = [
    valid,
    { ...valid, event_id: "" },
    { ...valid, event_id: "x".repeat(129) },
    { ...valid, event_id: "x".repeat(128) },
    { ...valid, instrument_id: "" },
    { ...valid, event_time_ms: 1.5 },
    { ...valid, event_time_ms: "1" },
    { ...valid, price: Infinity },
    { ...valid, price: "1.2" },
    { ...valid, size: 0 },
    { ...valid, size: -1 },
    { ...valid, source: 1 },
    { ...valid, commodity: undefined },
    { ...valid, unit: 5 },
    { ...valid, ingest_time_ms: null },
    null,
    [],
    "tick",
  ];
  for (const c of cases) {
    // The fast check may only accept what zod accepts (it may defer the rest to zod).
    if (isNormalizedTick(c)) assert.ok(NormalizedTick.safeParse(c).success, JSON.stringify(c));
  }
  assert.ok(isNormalizedTick(valid));
});
