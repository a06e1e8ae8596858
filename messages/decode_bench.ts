/**
 * Decoding at the Kafka edge alone (`deno bench messages/`): 1000 normalized ticks as the
 * normalizer writes them, bytes -> UTF-8 -> JSON -> schema (the hand-written check first), as
 * the actor stage does for every record.
 */
import { Buffer } from "node:buffer";
import { decodeJson } from "./decode.ts";
import { isNormalizedTick, NormalizedTick } from "./normalized_tick.ts";

const values = Array.from({ length: 1000 }, (_, i) => {
  const tick: NormalizedTick = {
    event_id: `b-${i.toString(16)}-${i}`,
    instrument_id: `INST-${i % 100}`,
    event_time_ms: 1795745786318 + i,
    price: 51.2 + i / 100,
    size: 3,
    source: "eex",
    symbol: "DEBY",
    commodity: "power",
    region: "DE",
    currency: "EUR",
    unit: "MWh",
    ingest_time_ms: 1795745786318,
  };
  return Buffer.from(JSON.stringify(tick));
});

Deno.bench("decode 1000 normalized ticks (UTF-8, JSON, check)", () => {
  for (const v of values) {
    if (!decodeJson(NormalizedTick, v, isNormalizedTick).ok) throw new Error("not decoded");
  }
});
