import assert from "node:assert/strict";
import { backoffCeilingMs, jitteredBackoffMs } from "./backoff.ts";

Deno.test("backoff doubles from the base per attempt and stops at the cap", () => {
  const options = { baseMs: 100, capMs: 1000 };
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((a) => backoffCeilingMs(a, options)), [
    100,
    100,
    200,
    400,
    800,
    1000,
  ]);
  assert.equal(backoffCeilingMs(60), 10_000, "defaults: 200 ms base, 10 s cap");
});

Deno.test("jittered backoff lies between half and all of the ceiling", () => {
  const options = { baseMs: 100, capMs: 1000 };
  assert.equal(jitteredBackoffMs(3, { ...options, random: () => 0 }), 200);
  assert.equal(jitteredBackoffMs(3, { ...options, random: () => 0.999999 }), 400);
  assert.equal(jitteredBackoffMs(9, { ...options, random: () => 0.5 }), 750);
});
