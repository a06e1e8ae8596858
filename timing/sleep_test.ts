import assert from "node:assert/strict";
import { sleep, yieldToIo } from "./sleep.ts";

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

Deno.test("work that yields with yieldToIo lets socket replies in as it runs", async () => {
  // A flush plan's shape: 4 ms slices for 400 ms, while a client keeps one byte going round
  // an echo server. Each round trip needs the runtime to poll its sockets.
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const echo = (async () => {
    const conn = await server.accept();
    const buf = new Uint8Array(1);
    while ((await conn.read(buf)) !== null) await conn.write(buf);
    conn.close();
  })();
  const client = await Deno.connect({
    hostname: "127.0.0.1",
    port: (server.addr as Deno.NetAddr).port,
  });
  let working = true;
  const replies: number[] = [];
  const pinger = (async () => {
    const buf = new Uint8Array(1);
    while (working) {
      await client.write(buf);
      await client.read(buf);
      replies.push(performance.now());
    }
  })();
  const started = performance.now();
  let slice = started;
  while (performance.now() - started < 400) {
    if (performance.now() - slice >= 4) {
      await yieldToIo();
      slice = performance.now();
    }
  }
  const ended = performance.now();
  working = false;
  await pinger;
  client.close();
  await echo;
  server.close();
  // The longest stretch of the work without a reply (yielding to immediates: all of it).
  const marks = [started, ...replies.filter((t) => t > started && t < ended), ended];
  const longest = Math.max(...marks.slice(1).map((t, i) => t - marks[i]!));
  assert.ok(longest < 100, `no reply for ${longest.toFixed(0)} ms of the work`);
});
