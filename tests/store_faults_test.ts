/**
 * The flush path under real store faults. The test runs its own Redis on a spare port, so
 * stopping it disturbs no other test: the node keeps running, `/ready` names the failing
 * part, and once the store is back the results are exact (Kafka holds the truth: a Redis
 * that comes back empty means rebuilding from the earliest record).
 */
import assert from "node:assert/strict";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { expectedInstruments, generateTicks } from "./expected.ts";
import {
  conflictingVersions,
  createTopics,
  produceTicks,
  waitExact,
  watermarksAt,
} from "./actor_harness.ts";
import { type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil } from "./support.ts";

const WINDOWS = [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }];

/** A free TCP port on the loopback interface. */
function sparePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** A Redis of the test's own, without persistence (as the local stack runs it). */
async function startRedis(port: number): Promise<Deno.ChildProcess> {
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const redis = createRedis(`redis://127.0.0.1:${port}/0`);
  try {
    await pollUntil("test redis answers", async () => (await redis.ping()) === "PONG" || undefined);
  } finally {
    await closeRedis(redis);
  }
  return child;
}

async function stopRedis(child: Deno.ChildProcess): Promise<void> {
  try {
    child.kill("SIGKILL");
  } catch {
    // already gone
  }
  await child.status;
}

async function readyParts(node: NodeProcess): Promise<{ status: number; failing: string[] }> {
  const res = await fetch(`${node.url}/ready`);
  const body = await res.json();
  return { status: res.status, failing: body.failing ?? [] };
}

Deno.test({
  name:
    "Redis killed mid-stream and started empty: the node stays up, /ready says redis, results exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const port = sparePort();
    let redis = await startRedis(port);
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      DATA_PROC_REDIS_URL: `redis://127.0.0.1:${port}/0`,
      DATA_PROC_BAR_WINDOWS: "1m,1h",
      DATA_PROC_SNAPSHOT_INTERVAL_MS: "500",
    });
    await createTopics(env);
    const input = generateTicks({
      seed: 31,
      instruments: 200,
      count: 30_000,
      startMs: Date.UTC(2026, 10, 20, 9, 0, 0),
      spreadMs: 2 * 3_600_000,
      outOfOrderRatio: 0.03,
      duplicateRatio: 0.02,
      maxDelayMs: 20_000,
    });
    const expected = expectedInstruments(input, {
      windows: WINDOWS,
      allowedLatenessMs: 5000,
      watermarksAt: watermarksAt(0, 15_000, 30_000),
    });
    const node = await spawnNode(env.env);
    let exited = false;
    void node.exited.then(() => (exited = true));
    try {
      await waitReady(node);
      await produceTicks(env, input.slice(0, 15_000));
      await pollUntil("first half committed and stored", async () => {
        const r = await fetch(`${node.url}/partitions`);
        const body = await r.json();
        const ticks = body.partitions.filter((p: { topic: string }) =>
          p.topic.endsWith("normalized.market.ticks.v1")
        );
        return ticks.length > 0 && ticks.every((p: { lag: number | null }) => p.lag === 0)
          ? true
          : undefined;
      });

      await stopRedis(redis);
      await pollUntil("/ready names redis", async () => {
        const ready = await readyParts(node);
        return ready.status === 503 && ready.failing.includes("redis") ? true : undefined;
      });
      // Events keep arriving during the outage.
      await produceTicks(env, input.slice(15_000));
      redis = await startRedis(port); // empty: snapshots, fences and offsets are gone

      await waitExact(env, expected, node);
      assert.equal(await conflictingVersions(env), 0);
      await pollUntil("/ready 200 again", async () => {
        return (await readyParts(node)).status === 200 ? true : undefined;
      });
      assert.equal(exited, false, "the node must stay up");
    } finally {
      await node.kill("SIGKILL");
      await stopRedis(redis);
      await env.cleanup();
    }
  },
});
