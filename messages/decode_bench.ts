/**
 * Decoding at the Kafka edge alone (`deno bench messages/`): 1000 normalized ticks as the
 * normalizer writes them, bytes -> UTF-8 -> JSON -> schema (the hand-written check first), as
 * the actor stage does for every record.
 */
import { Buffer } from "node:buffer";
import { decodeJson } from "./decode.ts";
import { isNormalizedTick, NormalizedTick } from "./normalized_tick.ts";
import { tick } from "../actors/kinds/instrument/test_fixtures.ts";

const values = Array.from(
  { length: 1000 },
  (_, i) =>
    Buffer.from(JSON.stringify(tick(`b-${i.toString(16)}-${i}`, 1795745786318 + i, 51.2, 3))),
);

Deno.bench("decode 1000 normalized ticks (UTF-8, JSON, check)", () => {
  for (const v of values) {
    if (!decodeJson(NormalizedTick, v, isNormalizedTick).ok) throw new Error("not decoded");
  }
});
