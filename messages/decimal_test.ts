import assert from "node:assert/strict";
import { decimalToNumber, multiplyDecimals, parseDecimal } from "./decimal.ts";

Deno.test("parseDecimal reads decimal strings and numbers exactly", () => {
  assert.deepEqual(parseDecimal("-12.50"), { units: -1250n, scale: 2 });
  assert.deepEqual(parseDecimal(".5"), { units: 5n, scale: 1 });
  assert.deepEqual(parseDecimal("7."), { units: 7n, scale: 0 });
  assert.deepEqual(parseDecimal("+1.5e3"), { units: 1500n, scale: 0 });
  assert.deepEqual(parseDecimal(1e-7), { units: 1n, scale: 7 });
  assert.deepEqual(parseDecimal(0.1), { units: 1n, scale: 1 });
});

Deno.test("parseDecimal refuses what is not a finite decimal", () => {
  for (const bad of ["", ".", "-", "1,5", "NaN", "Infinity", "1e", "0x10", " 1", "1e99999"]) {
    assert.equal(parseDecimal(bad), undefined, bad);
  }
  assert.equal(parseDecimal(Number.NaN), undefined);
  assert.equal(parseDecimal(Number.POSITIVE_INFINITY), undefined);
});

Deno.test("multiplyDecimals then decimalToNumber rounds once, to the nearest double", () => {
  const times = (a: string, b: string) =>
    decimalToNumber(multiplyDecimals(parseDecimal(a)!, parseDecimal(b)!));
  assert.equal(times("0.1", "3"), 0.3);
  assert.equal(times("-45.67", "0.01"), -0.4567);
  assert.equal(times("19.99", "100"), 1999);
  assert.equal(times("0", "-1"), 0);
  assert.ok(Object.is(times("0", "-1"), 0)); // never -0
  assert.equal(times("123456789.123456789", "1"), 123456789.12345679);
});
