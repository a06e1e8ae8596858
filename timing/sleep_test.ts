import assert from "node:assert/strict";
import { sleep } from "./sleep.ts";

Deno.test("sleep resolves early when its signal aborts, and at once when already aborted", async () => {
  const abort = new AbortController();
  const pending = sleep(60_000, abort.signal);
  abort.abort();
  await pending; // a leaked timer would fail the test's sanitizer
  await sleep(60_000, AbortSignal.abort());
});

Deno.test("sleep without a signal resolves after the delay", async () => {
  const started = performance.now();
  await sleep(5);
  assert.ok(performance.now() - started >= 4);
});
