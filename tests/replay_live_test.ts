/**
 * Operator actions under live traffic, on the real stack, checked against the independent
 * oracle: a replay while events keep arriving, killed with SIGKILL in its middle; two
 * overlapping replays at once; a replay from the middle of the data; a reset while the sinks
 * hold versions above the actor's snapshot.
 */
import assert from "node:assert/strict";
import { createClickHouse, insertRows, queryRows } from "../stores/clickhouse.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { expectedInstruments, generateTicks } from "./expected.ts";
import { createTopics, produceTicks, waitExact, watermarksAt } from "./actor_harness.ts";
import { type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { admin, announced, job, requestReplay, waitJob } from "./replay_support.ts";
import { freshEnv, pollUntil } from "./support.ts";

const WINDOWS = [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }];
// 20 minutes before a full hour: a replay from 20 minutes in starts at a 1h window's start.
const START = Date.UTC(2026, 10, 20, 8, 40, 0);

const input = generateTicks({
  seed: 31,
  instruments: 30,
  count: 24_000,
  startMs: START,
  spreadMs: 2 * 3_600_000,
  outOfOrderRatio: 0.03,
  duplicateRatio: 0.02,
  maxDelayMs: 20_000,
});
const options = { windows: WINDOWS, allowedLatenessMs: 5000 };

/** The oracle's result for `input` up to the last bound, produced in calls starting at each. */
function expectedUpTo(...bounds: number[]) {
  return expectedInstruments(input.slice(0, bounds.at(-1)), {
    ...options,
    watermarksAt: watermarksAt(0, ...bounds),
  });
}

/** A fresh environment (actor stage only) with its topics, and a node ready on it. */
async function liveNode(overrides: Record<string, string> = {}) {
  const env = await freshEnv({ DATA_PROC_NORMALIZER_ENABLED: "false", ...overrides });
  await createTopics(env);
  const node = await spawnNode(env.env);
  try {
    await waitReady(node);
    await announced(node);
  } catch (err) {
    await node.kill("SIGKILL");
    throw err;
  }
  return { env, node };
}

Deno.test({
  name:
    "replay under live traffic: killed with SIGKILL mid-replay, exact after restart; an overlapping replay gets 409",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      // A throttled replay read lasts long enough to kill the node inside it, and snapshots
      // (with offset commits) as often as flushes, so commits could pass the held events if
      // anything let them.
      DATA_PROC_REPLAY_MAX_RECORDS_PER_S: "2000",
      DATA_PROC_SNAPSHOT_INTERVAL_MS: "0",
    });
    await createTopics(env);
    let node = await spawnNode(env.env);
    const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
    try {
      await waitReady(node);
      await announced(node);
      await produceTicks(env, input.slice(0, 16_000));
      await waitExact(
        env,
        expectedUpTo(16_000),
        node,
      );

      // Two overlapping replays asked for at once: one runs, one is refused naming it.
      const [a, b] = await Promise.all([
        requestReplay(node, env, {
          kind: "instrument",
          from_key: "INST-0000",
          to_key: "INST-0009",
        }),
        requestReplay(node, env, { kind: "instrument", prefix: "INST-000" }),
      ]);
      const statuses = [a.status, b.status].sort();
      assert.deepEqual(statuses, [202, 409], JSON.stringify([a.body, b.body]));
      const [accepted, refused] = a.status === 202 ? [a, b] : [b, a];
      assert.equal(refused.body.error.code, "replay_running");
      assert.match(refused.body.error.message, new RegExp(accepted.body.job_id));

      // Live traffic for the replayed keys and others while the replay holds its keys.
      await pollUntil("replay in the middle of its read", async () => {
        const view = await job(node, env, accepted.body.job_id);
        if (view.status === "done") throw new Error("the replay ended before the kill");
        return view.progress.percent > 5 ? view : undefined;
      }, { intervalMs: 50 });
      await produceTicks(env, input.slice(16_000, 20_000));
      // The live events reached keys outside the replay (so flushes ran past them) while
      // the replay still holds its keys' events back.
      const expectedLive = expectedUpTo(16_000, 20_000);
      await pollUntil("live events flushed for a key outside the replay", async () => {
        const latest = JSON.parse(
          (await redis.get(`${env.config.DATA_PROC_REDIS_PREFIX}projection:latest:INST-0020`)) ??
            "null",
        );
        return latest?.event_id === expectedLive.latest.get("INST-0020")!.event_id
          ? true
          : undefined;
      });
      const mid = await job(node, env, accepted.body.job_id);
      assert.equal(mid.status, "running", "the replay ended before the kill");
      await node.kill("SIGKILL");

      // The job's node is gone: its share shows as failed and the job can be retried.
      node = await spawnNode(env.env);
      await waitReady(node);
      await announced(node);
      const failed = await job(node, env, accepted.body.job_id);
      assert.equal(failed.status, "failed", JSON.stringify(failed));
      // Exact without any replay: the events held at the kill were fetched again.
      await waitExact(env, expectedLive, node);
      const more = produceTicks(env, input.slice(20_000));
      const retry = await fetch(`${node.url}/replay/${accepted.body.job_id}/retry`, {
        method: "POST",
        headers: admin(env),
      });
      assert.equal(retry.status, 202);
      const retried = await retry.json();
      const done = await waitJob(node, env, retried.job_id);
      assert.equal(done.progress.percent, 100);
      const inRange = [...new Set(input.map((t) => t.instrument_id))]
        .filter((k) => k >= "INST-0000" && k <= "INST-0009").sort();
      assert.deepEqual(done.keys, inRange);
      await more;
      await waitExact(
        env,
        expectedUpTo(16_000, 20_000, input.length),
        node,
      );
      const list = await (await fetch(`${node.url}/replay`, { headers: admin(env) })).json();
      assert.deepEqual(
        list.jobs.map((j: { job_id: string }) => j.job_id).slice(0, 2),
        [retried.job_id, accepted.body.job_id],
      );
    } finally {
      await node.kill("SIGKILL");
      await closeRedis(redis);
    }
  },
});

Deno.test({
  name:
    "replay from the middle of the data: exact, rows before its first window untouched; a reset above stored versions wins",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { env, node } = await liveNode();
    const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
    const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
    const gold = env.config.DATA_PROC_CLICKHOUSE_GOLD_DB;
    const prefix = env.config.DATA_PROC_REDIS_PREFIX;
    try {
      await produceTicks(env, input.slice(0, 16_000));
      await waitExact(
        env,
        expectedUpTo(16_000),
        node,
      );
      const key = "INST-0003";
      const fromTime = START + 20 * 60_000; // 09:00, where the second 1h window starts
      const rows = () =>
        queryRows<{ resolution: string; start_ms: string; version: string; close: number }>(
          ch,
          `SELECT resolution, start_ms, version, close FROM ${gold}.bars FINAL
           WHERE instrument_id = '${key}' ORDER BY resolution, start_ms`,
        );
      const before = await rows();
      // Corrupt a 1m bar after the replay's start (with a version above it): the replay
      // must repair it, from versions above everything stored.
      const late = before.find((r) => r.resolution === "1m" && Number(r.start_ms) >= fromTime)!;
      const [full] = await queryRows<Record<string, unknown>>(
        ch,
        `SELECT * FROM ${gold}.bars FINAL WHERE instrument_id = '${key}' AND resolution = '1m'
         AND start_ms = ${late.start_ms}`,
      );
      await insertRows(ch, `${gold}.bars`, [{
        ...full,
        close: -1,
        version: Number(full!.version) + 1000,
      }]);
      // A dry run from the same time finds exactly that row (older rows are not its business).
      const dry = await requestReplay(node, env, {
        kind: "instrument",
        from_key: key,
        to_key: key,
        from_time: new Date(fromTime).toISOString(),
        dry_run: true,
      });
      assert.equal(dry.status, 202, JSON.stringify(dry.body));
      const found = (await waitJob(node, env, dry.body.job_id)).differences
        .map((d: { target: string; field: string }) => `${d.target}.${d.field}`);
      assert.deepEqual(found, [`gold.bars 1m|${late.start_ms}.close`]);

      const live = produceTicks(env, input.slice(16_000, 20_000));
      const accepted = await requestReplay(node, env, {
        kind: "instrument",
        from_key: key,
        to_key: key,
        from_time: new Date(fromTime).toISOString(),
      });
      assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
      await waitJob(node, env, accepted.body.job_id);
      await live;
      await waitExact(
        env,
        expectedUpTo(16_000, 20_000),
        node,
      );
      const after = await rows();
      const repaired = after.find((r) => r.resolution === "1m" && r.start_ms === late.start_ms)!;
      assert.ok(Number(repaired.version) > Number(late.version) + 1000, "repaired from below");
      // Bars before the replay's first window are left as they were (not written again).
      const older = (list: typeof before) =>
        list.filter((r) => Number(r.start_ms) < fromTime).map((r) => JSON.stringify(r));
      assert.ok(older(before).length > 0);
      assert.deepEqual(older(after), older(before));

      // Reset while the sinks hold versions above what the actor issued (as just after a
      // restart, before its snapshot catches up): what comes after the reset must win.
      const latestKey = `${prefix}projection:latest:${key}`;
      const stored = JSON.parse((await redis.get(latestKey))!);
      await redis.set(latestKey, JSON.stringify({ ...stored, version: stored.version + 5000 }));
      const reset = await fetch(`${node.url}/actors/instrument/${key}/reset`, {
        method: "POST",
        headers: { "content-type": "application/json", ...admin(env) },
        body: "{}",
      });
      const resetBody = await reset.json();
      assert.equal(reset.status, 200, JSON.stringify(resetBody));
      assert.ok(resetBody.version_base > stored.version + 5000, JSON.stringify(resetBody));
      const postReset = input.slice(20_000).filter((t) => t.instrument_id === key);
      await produceTicks(env, postReset);
      const want = expectedInstruments(postReset, {
        ...options,
        watermarksAt: watermarksAt(0, postReset.length),
      });
      await pollUntil("post-reset latest price in Redis", async () => {
        const latest = JSON.parse((await redis.get(latestKey)) ?? "null");
        return latest?.event_id === want.latest.get(key)!.event_id ? latest : undefined;
      });
    } finally {
      await node.kill("SIGKILL");
      await closeRedis(redis);
      await ch.close();
    }
  },
});

/** The value of one unlabelled-or-labelled series in a node's /metrics, summed over labels. */
async function metricSum(node: NodeProcess, name: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  return text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

Deno.test({
  name:
    "replay of 100 keys with 1000 bars each: progress moves, the group never rebalances, results exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { env, node } = await liveNode({
      DATA_PROC_BAR_WINDOWS: "1m",
      DATA_PROC_REPLAY_MAX_RECORDS_PER_S: "20000", // a read of 7 s at least: progress to see
    });
    // 1000 minutes of history for 100 instruments: about 1000 one-minute bars each.
    const history = generateTicks({
      seed: 41,
      instruments: 100,
      count: 150_000,
      startMs: START,
      spreadMs: 1000 * 60_000,
      outOfOrderRatio: 0.02,
      duplicateRatio: 0.01,
      maxDelayMs: 3000,
    });
    const windows = [{ name: "1m", ms: 60_000 }];
    try {
      await produceTicks(env, history);
      await waitExact(
        env,
        expectedInstruments(history, {
          windows,
          allowedLatenessMs: 5000,
          watermarksAt: watermarksAt(0, history.length),
        }),
        node,
      );
      const rebalances = await metricSum(node, "data_processing_rebalances_total");
      const accepted = await requestReplay(node, env, { kind: "instrument", prefix: "INST-" });
      assert.equal(accepted.status, 202, JSON.stringify(accepted.body));
      const seen = new Set<number>();
      const done = await pollUntil("replay done", async () => {
        const view = await job(node, env, accepted.body.job_id);
        if (view.status === "failed") throw new Error(JSON.stringify(view));
        seen.add(view.progress.percent);
        return view.status === "done" ? view : undefined;
      }, { timeoutMs: 180_000, intervalMs: 100 });
      assert.equal(done.keys.length, 100);
      const partial = [...seen].filter((p) => p > 0 && p < 100);
      assert.ok(partial.length >= 2, `progress seen: ${[...seen].sort((a, b) => a - b)}`);
      assert.equal(await metricSum(node, "data_processing_rebalances_total"), rebalances);
      await waitExact(
        env,
        expectedInstruments(history, {
          windows,
          allowedLatenessMs: 5000,
          watermarksAt: watermarksAt(0, history.length),
        }),
        node,
      );
    } finally {
      await node.kill("SIGKILL");
    }
  },
});

Deno.test({
  name: "a cancelled replay keeps the live state and applies the events it held",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { env, node } = await liveNode({
      DATA_PROC_REPLAY_MAX_RECORDS_PER_S: "1000", // slow enough to cancel in the middle
    });
    try {
      await produceTicks(env, input.slice(0, 12_000));
      await waitExact(
        env,
        expectedUpTo(12_000),
        node,
      );
      const accepted = await requestReplay(node, env, { kind: "instrument", prefix: "INST-00" });
      assert.equal(accepted.status, 202);
      await pollUntil("replay reading", async () => {
        const view = await job(node, env, accepted.body.job_id);
        return view.progress.percent > 1 ? true : undefined;
      }, { intervalMs: 50 });
      // Live events for the held keys arrive while the replay holds them.
      await produceTicks(env, input.slice(12_000, 16_000));
      const cancel = await fetch(`${node.url}/replay/${accepted.body.job_id}/cancel`, {
        method: "POST",
        headers: admin(env),
      });
      assert.equal(cancel.status, 202);
      await cancel.body?.cancel();
      const cancelled = await waitJob(node, env, accepted.body.job_id, "cancelled");
      assert.ok(cancelled.progress.percent < 100, JSON.stringify(cancelled.progress));
      await waitExact(
        env,
        expectedUpTo(12_000, 16_000),
        node,
      );
      // A new job over the same range is accepted once the cancelled one ended.
      const again = await requestReplay(node, env, { kind: "instrument", prefix: "INST-00" });
      assert.equal(again.status, 202, JSON.stringify(again.body));
      const stop = await fetch(`${node.url}/replay/${again.body.job_id}/cancel`, {
        method: "POST",
        headers: admin(env),
      });
      await stop.body?.cancel();
      await waitJob(node, env, again.body.job_id, "cancelled");
    } finally {
      await node.kill("SIGKILL");
    }
  },
});
