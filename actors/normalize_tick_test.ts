import assert from "node:assert/strict";
import { canonicalPrice, normalizeTick } from "./normalize_tick.ts";
import type { InstrumentRef, ReferenceLookup } from "../messages/reference_lookup.ts";

const POWER: InstrumentRef = {
  instrument_id: "power.de.base",
  price_multiplier: "1",
  commodity: "power",
  region: "DE",
  currency: "EUR",
  unit: "MWh",
};
const CENTS: InstrumentRef = { ...POWER, instrument_id: "gas.us.hh", price_multiplier: "0.01" };

const refdata: ReferenceLookup = {
  instrument: (source, symbol) =>
    source === "eex" && symbol === "DEBY"
      ? POWER
      : source === "cme" && symbol === "NGc"
      ? CENTS
      : undefined,
  curve: () => undefined,
};

const bytes = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
const tick = (overrides: Record<string, unknown> = {}) =>
  bytes({
    event_id: "e-1",
    source: "eex",
    symbol: "DEBY",
    ts: "2027-01-15T10:00:00Z",
    price: 42.5,
    size: 5,
    ...overrides,
  });

// Fixtures use 2027 event times with older record timestamps: no skew limit unless tested.
const NO_SKEW_LIMIT = Number.POSITIVE_INFINITY;

function normalized(value: Uint8Array | null) {
  const result = normalizeTick(value, refdata, {
    ingestTimeMs: 1_700_000_000_000,
    maxFutureSkewMs: NO_SKEW_LIMIT,
  });
  if (!result.ok) throw new Error(`expected ok, got ${JSON.stringify(result.rejection)}`);
  return result.event;
}

function rejection(
  value: Uint8Array | null,
  options = { ingestTimeMs: 0, maxFutureSkewMs: NO_SKEW_LIMIT },
) {
  const result = normalizeTick(value, refdata, options);
  if (result.ok) throw new Error(`expected a rejection, got ${JSON.stringify(result.event)}`);
  return result.rejection;
}

Deno.test("normalizeTick enriches a mapped tick and keeps its event_id", () => {
  assert.deepEqual(normalized(tick()), {
    event_id: "e-1",
    instrument_id: "power.de.base",
    event_time_ms: Date.UTC(2027, 0, 15, 10),
    price: 42.5,
    size: 5,
    source: "eex",
    symbol: "DEBY",
    commodity: "power",
    region: "DE",
    currency: "EUR",
    unit: "MWh",
    ingest_time_ms: 1_700_000_000_000,
  });
});

Deno.test("normalizeTick is deterministic: the same bytes give the same event", () => {
  assert.deepEqual(normalized(tick()), normalized(tick()));
});

Deno.test("normalizeTick converts zoned ISO times and epoch ms to UTC epoch ms", () => {
  const utc = Date.UTC(2027, 0, 15, 9, 30, 0, 123);
  assert.equal(normalized(tick({ ts: "2027-01-15T10:30:00.123+01:00" })).event_time_ms, utc);
  assert.equal(normalized(tick({ ts: "2027-01-15T04:30:00.123-05:00" })).event_time_ms, utc);
  assert.equal(normalized(tick({ ts: "2027-01-15T09:30:00.123456Z" })).event_time_ms, utc);
  assert.equal(normalized(tick({ ts: "2027-01-15T09:30Z" })).event_time_ms, utc - 123);
  assert.equal(normalized(tick({ ts: utc })).event_time_ms, utc);
});

Deno.test("normalizeTick multiplies the price exactly in decimal", () => {
  assert.equal(normalized(tick({ symbol: "NGc", source: "cme", price: "345.67" })).price, 3.4567);
  assert.equal(normalized(tick({ symbol: "NGc", source: "cme", price: 0.3 })).price, 0.003);
  assert.equal(canonicalPrice("0.1", "3"), 0.3); // 0.1 * 3 in doubles is 0.30000000000000004
  assert.equal(canonicalPrice("1.1", "1.1"), 1.21); // doubles give 1.2100000000000002
  assert.equal(canonicalPrice(1e-7, "1000"), 0.0001);
  assert.equal(canonicalPrice("1.5e3", "0.01"), 15);
});

Deno.test("normalizeTick keeps negative prices and accepts decimal strings", () => {
  assert.equal(normalized(tick({ price: "-12.50" })).price, -12.5);
  assert.equal(normalized(tick({ price: -0.01 })).price, -0.01);
  assert.equal(normalized(tick({ size: "0.25" })).size, 0.25);
});

Deno.test("normalizeTick rejects an unmapped symbol as unknown_instrument", () => {
  const r = rejection(tick({ symbol: "NOPE" }));
  assert.equal(r.reason, "unknown_instrument");
  assert.match(r.message, /source=eex symbol=NOPE/);
});

Deno.test("normalizeTick names the first failing field of an invalid payload", () => {
  const cases: [Uint8Array | null, string][] = [
    [null, "value"],
    [new Uint8Array([0xff, 0xfe, 0x00]), "value"],
    [new TextEncoder().encode("not json"), "value"],
    [bytes([1, 2]), "value"],
    [tick({ event_id: "" }), "event_id"],
    [tick({ event_id: "x".repeat(129) }), "event_id"],
    [tick({ event_id: undefined, ts: "bad" }), "event_id"],
    [tick({ source: 7 }), "source"],
    [tick({ symbol: undefined }), "symbol"],
    [tick({ ts: "2027-01-15T10:00:00" }), "ts"], // no zone
    [tick({ ts: "2027-02-30T10:00:00Z" }), "ts"],
    [tick({ ts: "2027-01-15T25:00:00Z" }), "ts"],
    [tick({ ts: 1.5 }), "ts"],
    [tick({ ts: -1 }), "ts"],
    [tick({ price: "abc" }), "price"],
    [tick({ price: "" }), "price"],
    [tick({ price: "NaN" }), "price"],
    [tick({ price: null }), "price"],
    [tick({ size: 0 }), "size"],
    [tick({ size: "-1" }), "size"],
    [tick({ size: "0.000" }), "size"],
  ];
  for (const [value, field] of cases) {
    const r = rejection(value);
    assert.equal(r.reason, "invalid_payload", `${field}: ${r.message}`);
    assert.ok(r.message.startsWith(`${field}:`), `expected ${field}, got "${r.message}"`);
  }
});

Deno.test("normalizeTick rejects a price whose canonical value overflows", () => {
  const r = rejection(tick({ symbol: "NGc", source: "cme", price: "1e999" }));
  assert.equal(r.reason, "invalid_payload");
  assert.match(r.message, /^price:/);
});

Deno.test("normalizeTick rejects an event time too far ahead of the record timestamp as ts", () => {
  const recordMs = Date.UTC(2027, 0, 15, 10);
  const options = { ingestTimeMs: recordMs, maxFutureSkewMs: 300_000 };
  const r = rejection(tick({ ts: recordMs + 300_001, symbol: "NOPE" }), options);
  assert.equal(r.reason, "invalid_payload"); // before the lookup: no mapping fixes the clock
  assert.match(r.message, /^ts: \d+ is 300001 ms ahead of the record timestamp \d+/);
  const atLimit = normalizeTick(tick({ ts: recordMs + 300_000 }), refdata, options);
  assert.equal(atLimit.ok, true);
  const past = normalizeTick(tick({ ts: recordMs - 86_400_000 }), refdata, options);
  assert.equal(past.ok, true); // late data is the aggregator's business, not a skew
});
