import assert from "node:assert/strict";
import { Hono } from "hono";
import { readLimit, TokenBucket } from "./read_limit.ts";

Deno.test("token bucket: a burst, then one token per 1/rate seconds", () => {
  let now = 0;
  const bucket = new TokenBucket(2, 4, () => now);
  for (let i = 0; i < 4; i++) assert.equal(bucket.take(), 0);
  assert.equal(bucket.take(), 500);
  now += 499;
  assert.ok(bucket.take() > 0);
  now += 2;
  assert.equal(bucket.take(), 0);
  now += 60_000; // refills up to the burst only
  for (let i = 0; i < 4; i++) assert.equal(bucket.take(), 0);
  assert.ok(bucket.take() > 0);
});

Deno.test("read limit: GETs past the burst get 429 with Retry-After; probes and POSTs never", async () => {
  const app = new Hono();
  app.onError((err, c) => c.json({ code: (err as { code?: string }).code }, 429));
  app.use("*", readLimit(1));
  app.get("/partitions", (c) => c.json({}));
  app.get("/health", (c) => c.json({}));
  app.post("/replay", (c) => c.json({}));
  const statuses = [];
  for (let i = 0; i < 4; i++) statuses.push((await app.request("/partitions")).status);
  assert.deepEqual(statuses, [200, 200, 429, 429]);
  const limited = await app.request("/partitions");
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "1");
  for (let i = 0; i < 5; i++) {
    assert.equal((await app.request("/health")).status, 200);
    assert.equal((await app.request("/replay", { method: "POST" })).status, 200);
  }
});
