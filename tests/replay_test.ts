/**
 * Replay of a key range on the real stack: a dry run reports exactly the planted
 * corruption and writes nothing; a replay while events keep flowing restores the key to the
 * expected result, leaves other keys untouched and doubles nothing.
 */
import assert from "node:assert/strict";
import { createClickHouse, insertRows, queryRows } from "../stores/clickhouse.ts";
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
import { freshEnv, pollUntil, type TestEnv } from "./support.ts";

const WINDOWS = [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }];
const KEY = "INST-0007";

async function replay(node: NodeProcess, env: TestEnv, body: Record<string, unknown>) {
  const res = await fetch(`${node.url}/replay`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${env.env.DATA_PROC_ADMIN_TOKEN}`,
    },
    body: JSON.stringify(body),
  });
  const accepted = await res.json();
  assert.equal(res.status, 202, JSON.stringify(accepted));
  return await pollUntil("replay job done", async () => {
    const job = await (await fetch(`${node.url}/replay/${accepted.job_id}`, {
      headers: { authorization: `Bearer ${env.env.DATA_PROC_ADMIN_TOKEN}` },
    })).json();
    if (job.status === "failed") throw new Error(`replay failed: ${JSON.stringify(job)}`);
    return job.status === "done" ? job : undefined;
  }, { timeoutMs: 60_000 });
}

async function otherKeysState(env: TestEnv) {
  const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  try {
    const keys = (await redis.keys(`${env.config.DATA_PROC_REDIS_PREFIX}projection:*`))
      .filter((k) => !k.endsWith(`:${KEY}`)).sort();
    const values = await redis.mget(keys);
    const rows = await queryRows<Record<string, unknown>>(
      ch,
      // FINAL: what readers see. Without it a background merge that drops superseded
      // versions between two reads would look like a change.
      `SELECT * FROM ${env.config.DATA_PROC_CLICKHOUSE_GOLD_DB}.bars FINAL
       WHERE instrument_id != '${KEY}' ORDER BY instrument_id, resolution, start_ms, version`,
    );
    return { keys, values, rows };
  } finally {
    await closeRedis(redis);
    await ch.close();
  }
}

Deno.test({
  name:
    "replay: a dry run reports exactly the corruption; a replay while events flow restores the key alone",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      DATA_PROC_IDLE_CLOSE_MS: "600000", // no quiet close between the byte-for-byte snapshots
    });
    await createTopics(env);
    const input = generateTicks({
      seed: 21,
      instruments: 40,
      count: 16_000,
      startMs: Date.UTC(2026, 10, 20, 9, 0, 0),
      spreadMs: 2 * 3_600_000,
      outOfOrderRatio: 0.03,
      duplicateRatio: 0.02,
      maxDelayMs: 60_000, // far beyond the 5 s lateness: late events, which a rebuild must judge alike
    });
    const half = input.slice(0, 8000);
    const options = {
      windows: WINDOWS,
      allowedLatenessMs: 5000,
      watermarksAt: watermarksAt(0, 8000, 16_000),
    };
    const node = await spawnNode(env.env);
    const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
    const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
    const gold = env.config.DATA_PROC_CLICKHOUSE_GOLD_DB;
    const latestKey = `${env.config.DATA_PROC_REDIS_PREFIX}projection:latest:${KEY}`;
    try {
      await waitReady(node);
      await pollUntil("node announced its partitions", async () => {
        const body = await (await fetch(`${node.url}/partitions`)).json();
        return body.nodes.some((n: { partitions: unknown[] }) => n.partitions.length > 0)
          ? true
          : undefined;
      });
      await produceTicks(env, half);
      await waitExact(
        env,
        expectedInstruments(half, { ...options, watermarksAt: watermarksAt(0, 8000) }),
      );

      // Plant corruption: a wrong latest price, and a gold bar row with a wrong close.
      const latest = JSON.parse((await redis.get(latestKey))!);
      await redis.set(latestKey, JSON.stringify({ ...latest, price: 123456.5 }));
      const [bar] = await queryRows<Record<string, unknown>>(
        ch,
        `SELECT * FROM ${gold}.bars FINAL WHERE instrument_id = '${KEY}' AND resolution = '1h'
         ORDER BY start_ms LIMIT 1`,
      );
      assert.ok(bar);
      await insertRows(ch, `${gold}.bars`, [{
        ...bar,
        close: -777.25,
        version: Number(bar.version) + 1000,
      }]);
      const before = await otherKeysState(env);

      const dry = await replay(node, env, {
        kind: "instrument",
        from_key: KEY,
        to_key: KEY,
        from_time: 0,
        dry_run: true,
      });
      const found = dry.differences.map((d: { target: string; field: string }) =>
        `${d.target}.${d.field}`
      ).sort();
      assert.deepEqual(found, [
        `gold.bars 1h|${bar.start_ms}.close`,
        `projection:latest:${KEY}.price`,
      ], JSON.stringify(dry.differences));
      assert.equal(JSON.parse((await redis.get(latestKey))!).price, 123456.5, "dry run wrote");
      assert.deepEqual(await otherKeysState(env), before);

      // Real replay while the second half flows in.
      const flowing = produceTicks(env, input.slice(8000));
      await replay(node, env, { kind: "instrument", prefix: KEY, from_time: 0 });
      await flowing;
      await waitExact(env, expectedInstruments(input, options));
      assert.equal(await conflictingVersions(env), 0);

      // Once quiet, a replay changes nothing for any other key, byte for byte.
      const quiet = await otherKeysState(env);
      await replay(node, env, { kind: "instrument", from_key: KEY, to_key: KEY, from_time: 0 });
      await waitExact(env, expectedInstruments(input, options));
      assert.deepEqual(await otherKeysState(env), quiet);
    } finally {
      await closeRedis(redis);
      await ch.close();
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "replay of a prefix runs on every node owning partitions and leaves results exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      DATA_PROC_NORMALIZED_PARTITIONS: "4",
    });
    await createTopics(env);
    const input = generateTicks({
      seed: 22,
      instruments: 30,
      count: 6000,
      startMs: Date.UTC(2026, 10, 20, 9, 0, 0),
      spreadMs: 3_600_000,
      outOfOrderRatio: 0.02,
      duplicateRatio: 0.02,
      maxDelayMs: 60_000,
    });
    const options = {
      windows: WINDOWS,
      allowedLatenessMs: 5000,
      watermarksAt: watermarksAt(0, 6000),
    };
    const a = await spawnNode(env.env);
    const b = await spawnNode(env.env);
    try {
      await waitReady(a);
      await waitReady(b);
      await pollUntil("both nodes announce partitions", async () => {
        const body = await (await fetch(`${a.url}/partitions`)).json();
        const owners = body.nodes.filter((n: { partitions: { topic: string }[] }) =>
          n.partitions.some((p) => p.topic.endsWith("normalized.market.ticks.v1"))
        );
        return owners.length === 2 ? true : undefined;
      });
      await produceTicks(env, input);
      await waitExact(env, expectedInstruments(input, options));
      const job = await replay(a, env, { kind: "instrument", prefix: "INST-", from_time: 0 });
      assert.equal(job.nodes.length, 2);
      assert.ok(job.nodes.every((n: { status: string }) => n.status === "done"));
      assert.equal(job.keys.length, 30);
      await waitExact(env, expectedInstruments(input, options));
      assert.equal(await conflictingVersions(env), 0);
    } finally {
      await a.kill("SIGKILL");
      await b.kill("SIGKILL");
      await env.cleanup();
    }
  },
});
