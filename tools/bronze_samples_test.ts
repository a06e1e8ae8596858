import assert from "node:assert/strict";
import { bronzeSamples, checkSampleOptions, sampleReferenceData } from "./bronze_samples.ts";

const OPTIONS = {
  count: 2000,
  instruments: 10,
  curves: 4,
  seed: 7,
  malformedRatio: 0.05,
  duplicateRatio: 0.03,
  startMs: Date.UTC(2027, 0, 1),
  stepMs: 100,
};

Deno.test("bronzeSamples gives the same records for the same options", () => {
  const a = [...bronzeSamples(OPTIONS)];
  const b = [...bronzeSamples(OPTIONS)];
  assert.equal(a.length, 2000);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, [...bronzeSamples({ ...OPTIONS, seed: 8 })]);
});

Deno.test("bronzeSamples mixes sources, negative prices, time forms, duplicates and bad records", () => {
  const samples = [...bronzeSamples(OPTIONS)];
  const decoder = new TextDecoder();
  const valid = samples.filter((s) => s.expected === "ok" && !s.duplicate).map((s) =>
    JSON.parse(decoder.decode(s.value))
  );
  assert.deepEqual(new Set(valid.map((v) => v.source)), new Set(["eex", "ice", "cme"]));
  assert.ok(valid.some((v) => Number(v.price) < 0), "negative prices");
  assert.ok(valid.some((v) => typeof v.price === "string"), "decimal strings");
  assert.ok(valid.some((v) => typeof v.ts === "number"), "epoch ms");
  assert.ok(valid.some((v) => String(v.ts).endsWith("+01:00")), "offset times");
  assert.ok(valid.some((v) => String(v.ts).endsWith("Z")), "UTC times");
  assert.ok(samples.some((s) => s.kind === "curve"));
  const dups = samples.filter((s) => s.duplicate).length;
  const bad = samples.filter((s) => s.expected !== "ok").length;
  assert.ok(dups > 20 && dups < 120, `duplicates: ${dups}`);
  assert.ok(bad > 50 && bad < 170, `malformed: ${bad}`);
  const reasons = new Set(samples.map((s) => s.expected));
  assert.deepEqual(
    reasons,
    new Set(["ok", "invalid_payload", "unknown_instrument", "unknown_curve"]),
  );
});

Deno.test("sampleReferenceData maps every generated symbol and curve once", () => {
  const data = sampleReferenceData({ instruments: 20, curves: 5 });
  assert.equal(new Set(data.instruments.map((i) => `${i.source}/${i.symbol}`)).size, 20);
  assert.equal(new Set(data.instruments.map((i) => i.instrument_id)).size, 20);
  assert.equal(new Set(data.curves.map((c) => c.curve_id)).size, 5);
  assert.ok(data.instruments.some((i) => i.price_multiplier !== "1"));
});

Deno.test("checkSampleOptions names the bad option", () => {
  assert.throws(
    () => checkSampleOptions({ ...OPTIONS, malformedRatio: 1.5 }),
    /malformedRatio must be between 0 and 1, got 1.5/,
  );
  assert.throws(() => checkSampleOptions({ ...OPTIONS, instruments: 0 }), RangeError);
});
