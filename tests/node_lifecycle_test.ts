/** The node process: health, readiness with real stores, clean SIGTERM, bad configuration. */
import assert from "node:assert/strict";
import { spawnNode, waitReady } from "./node_process.ts";
import { freshEnv } from "./support.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test({
  name: "a node answers /health, becomes ready with every store up, and exits 0 on SIGTERM",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const env = await freshEnv();
    const node = await spawnNode(env.env);
    try {
      const health = await fetch(`${node.url}/health`);
      assert.equal(health.status, 200);
      await health.body?.cancel();
      await waitReady(node);
      const ready = await (await fetch(`${node.url}/ready`)).json();
      assert.equal(ready.status, "ready");
      assert.equal(await node.kill("SIGTERM"), 0);
      assert.match(node.log(), /"msg":"stopped"/);
      assert.doesNotMatch(node.log(), /may not fit in the V8 heap/);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

for (const part of ["redis", "postgres", "clickhouse"] as const) {
  Deno.test({
    name: `/ready answers 503 naming ${part} when its URL points at a closed port`,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const env = await freshEnv();
      const port = closedPort();
      const bad = {
        redis: { DATA_PROC_REDIS_URL: `redis://127.0.0.1:${port}/0` },
        postgres: { DATA_PROC_POSTGRES_DSN: `postgres://postgres@127.0.0.1:${port}/postgres` },
        clickhouse: { DATA_PROC_CLICKHOUSE_URL: `http://127.0.0.1:${port}` },
      }[part];
      const node = await spawnNode({ ...env.env, ...bad });
      try {
        const res = await fetch(`${node.url}/ready`);
        const body = await res.json();
        assert.equal(res.status, 503);
        assert.ok(body.failing.includes(part), JSON.stringify(body));
        assert.equal(body.parts[part].ok, false);
        assert.equal(await node.kill("SIGTERM"), 0);
      } finally {
        await node.kill("SIGKILL");
        await env.cleanup();
      }
    },
  });
}

Deno.test({
  name: "/ready answers 503 naming kafka when the bootstrap points at a closed port",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const env = await freshEnv();
    const port = closedPort();
    const node = await spawnNode({ ...env.env, DATA_PROC_KAFKA_BOOTSTRAP: `127.0.0.1:${port}` });
    try {
      const res = await fetch(`${node.url}/ready`);
      const body = await res.json();
      assert.equal(res.status, 503);
      assert.ok(body.failing.includes("kafka"), JSON.stringify(body));
      assert.equal(await node.kill("SIGTERM"), 0);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "a node warns at start when its live-actor cap could fill half a thread's V8 heap",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const env = await freshEnv();
    // 200k actors of up to 8 KB on one thread: 1.6 GB, against the start task's 1048 MiB.
    const node = await spawnNode({
      ...env.env,
      DATA_PROC_WORKERS: "1",
      DATA_PROC_MAX_LIVE_ACTORS: "200000",
    });
    try {
      await waitReady(node); // a warning, not a refusal: the node runs
      const line = node.log().split("\n").find((l) => l.includes("may not fit in the V8 heap"));
      assert.ok(line, node.log());
      const warning = JSON.parse(line);
      assert.equal(warning.level, "warn");
      assert.equal(warning.live_actors_per_thread, 200000);
      assert.ok(warning.heap_limit_mib >= 1024 && warning.heap_limit_mib <= 1024 + 24, line);
      assert.equal(await node.kill("SIGTERM"), 0);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test("a node with invalid configuration exits non-zero naming each bad variable", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN],
    env: { DATA_PROC_HTTP_PORT: "http", DATA_PROC_BAR_WINDOWS: "5q", DATA_PROC_REDIS_URL: "nope" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.notEqual(out.code, 0);
  for (const name of ["DATA_PROC_HTTP_PORT", "DATA_PROC_BAR_WINDOWS", "DATA_PROC_REDIS_URL"]) {
    assert.ok(stderr.includes(name), `${name} not named in:\n${stderr}`);
  }
});
