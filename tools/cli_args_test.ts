import assert from "node:assert/strict";
import { parseDuration, parseFlags, parseNumber, parseTime, UsageError } from "./cli_args.ts";

Deno.test("parseDuration reads s/m/h/d sizes and plain milliseconds, and rejects the rest", () => {
  assert.equal(parseDuration("window", "24h"), 86_400_000);
  assert.equal(parseDuration("window", "15m"), 900_000);
  assert.equal(parseDuration("window", "1500"), 1500);
  for (const bad of ["", "0", "0h", "1w", "-1h", "1.5h", "soon"]) {
    assert.throws(() => parseDuration("window", bad), UsageError, bad);
  }
});

Deno.test("parseTime takes epoch ms, ISO times with a zone and bare dates, never local time", () => {
  assert.equal(parseTime("from", "1714521600000"), 1714521600000);
  assert.equal(parseTime("from", "2024-05-01T00:00:00Z"), 1714521600000);
  assert.equal(parseTime("from", "2024-05-01T02:00:00+02:00"), 1714521600000);
  assert.equal(parseTime("from", "2024-05-01"), 1714521600000);
  for (const bad of ["2024-05-01T00:00:00", "yesterday", "2024-13-45T00:00:00Z", ""]) {
    assert.throws(() => parseTime("from", bad), UsageError, bad);
  }
});

Deno.test("parseNumber checks range and integrality", () => {
  assert.equal(parseNumber("n", "6"), 6);
  assert.equal(parseNumber("n", "0.5", { min: 0 }), 0.5);
  assert.throws(() => parseNumber("n", "1.5", { integer: true }), /must be an integer/);
  assert.throws(() => parseNumber("n", "-1", { min: 0 }), /must be >= 0/);
  assert.throws(() => parseNumber("n", "abc"), /must be a number/);
  assert.throws(() => parseNumber("n", ""), /must be a number/);
});

Deno.test("parseFlags turns unknown flags and missing values into UsageError", () => {
  const spec = { window: { type: "string" as const }, json: { type: "boolean" as const } };
  assert.deepEqual(parseFlags(["--window", "1h", "--json"], spec), { window: "1h", json: true });
  assert.throws(() => parseFlags(["--nope"], spec), UsageError);
  assert.throws(() => parseFlags(["--window"], spec), UsageError);
  assert.throws(() => parseFlags(["positional"], spec), UsageError);
});
