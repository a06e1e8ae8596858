/**
 * The flush path under real store faults. Each test runs its own Redis or ClickHouse on a
 * spare port, so stopping it disturbs no other test: the node keeps running, `/ready` names the failing
 * part, and once the store is back the results are exact (Kafka holds the truth: a Redis
 * that comes back empty means rebuilding from the earliest record).
 */
import assert from "node:assert/strict";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { expectedInstruments, generateTicks } from "./expected.ts";
import {
  committedToEnd,
  conflictingVersions,
  createTopics,
  produceTicks,
  waitExact,
  watermarksAt,
} from "./actor_harness.ts";
import { metricValue, type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { announced, job, requestReplay, waitJob } from "./replay_support.ts";
import { freshEnv, pollUntil, type TestEnv } from "./support.ts";

const WINDOWS = [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }];

/** `n` distinct free TCP ports on the loopback interface (held together while chosen). */
function sparePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

/**
 * A Redis of the test's own: without persistence (as the local stack runs it), or with an
 * append-only file in `aofDir` (as docker-compose runs it).
 */
async function startRedis(port: number, aofDir?: string): Promise<Deno.ChildProcess> {
  const persistence = aofDir === undefined
    ? ["--appendonly", "no"]
    : ["--appendonly", "yes", "--appendfsync", "everysec", "--dir", aofDir];
  const child = new Deno.Command("redis-server", {
    args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", ...persistence],
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

/** A ClickHouse of the test's own (Debian's server, its own data folder), as deploy/local runs it. */
async function startClickHouse(
  [http, tcp, interserver]: number[],
  dir: string,
): Promise<Deno.ChildProcess> {
  for (const sub of ["tmp", "uf", "fs"]) await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
  const child = new Deno.Command("/usr/sbin/clickhouse-server", {
    args: [
      "--config-file=/etc/clickhouse-server/config.xml",
      "--",
      `--path=${dir}/`,
      `--tmp_path=${dir}/tmp/`,
      `--user_files_path=${dir}/uf/`,
      `--format_schema_path=${dir}/fs/`,
      `--logger.log=${dir}/log`,
      `--logger.errorlog=${dir}/err`,
      `--http_port=${http}`,
      `--tcp_port=${tcp}`,
      `--interserver_http_port=${interserver}`,
      "--listen_host=127.0.0.1",
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await pollUntil("test clickhouse answers", async () => {
    try {
      const res = await fetch(`http://127.0.0.1:${http}/ping`);
      await res.body?.cancel();
      return res.ok || undefined;
    } catch {
      return undefined;
    }
  });
  return child;
}

/**
 * A ClickHouse of the test's own that the test stops and starts; `cleanup` drops the test's
 * databases (starting it again if the test left it down) and removes it.
 */
async function ownClickHouse() {
  const ports = sparePorts(3);
  const dir = await Deno.makeTempDir({ prefix: "dp-clickhouse-" });
  let child = await startClickHouse(ports, dir);
  let down = false;
  return {
    url: `http://127.0.0.1:${ports[0]}`,
    async stop() {
      child.kill("SIGKILL");
      await child.status;
      down = true;
    },
    async start() {
      child = await startClickHouse(ports, dir);
      down = false;
    },
    async cleanup(env: TestEnv) {
      if (down) await this.start();
      await env.cleanup();
      child.kill("SIGKILL");
      await child.status;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const KAFKA_SCRIPT = new URL("../deploy/local/kafka.sh", import.meta.url).pathname;

/** A Kafka broker of the test's own (deploy/local/kafka.sh in the foreground), on spare ports. */
async function startKafka(ports: number[], dir: string): Promise<Deno.ChildProcess> {
  const [port, controller] = ports as [number, number];
  const child = new Deno.Command("bash", {
    args: [KAFKA_SCRIPT],
    env: {
      KAFKA_PORT: String(port),
      KAFKA_CONTROLLER_PORT: String(controller),
      KAFKA_DATA_DIR: dir,
      KAFKA_EXEC: "1",
    },
    stdout: "null",
    stderr: "null",
  }).spawn();
  await pollUntil("test kafka listens", async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      return undefined;
    }
  }, { timeoutMs: 120_000, intervalMs: 250 });
  return child;
}

interface TickPartition {
  topic: string;
  partition: number;
  processed_offset: number;
  lag: number | null;
}

async function tickPartitions(node: NodeProcess): Promise<TickPartition[]> {
  const body = await (await fetch(`${node.url}/partitions`)).json();
  return (body.partitions as TickPartition[]).filter((p) =>
    p.topic.endsWith("normalized.market.ticks.v1")
  );
}

/**
 * A fresh environment with its topics, the actor stage only, snapshots (and so the stored
 * resume offsets) every 500 ms; `stores` points the node at the test's own services.
 */
async function faultEnv(stores: Record<string, string>): Promise<TestEnv> {
  const env = await freshEnv({
    DATA_PROC_NORMALIZER_ENABLED: "false",
    DATA_PROC_BAR_WINDOWS: "1m,1h",
    DATA_PROC_SNAPSHOT_INTERVAL_MS: "500",
    ...stores,
  });
  await createTopics(env);
  return env;
}

/** The fault tests' input: 2 h of ticks, 3% out of order up to 20 s, 2% redelivered. */
function faultTicks(seed: number, instruments: number, count: number): NormalizedTick[] {
  return generateTicks({
    seed,
    instruments,
    count,
    startMs: Date.UTC(2026, 10, 20, 9, 0, 0),
    spreadMs: 2 * 3_600_000,
    outOfOrderRatio: 0.03,
    duplicateRatio: 0.02,
    maxDelayMs: 20_000,
  });
}

/** The oracle for `ticks` produced by `produceTicks` calls starting at `bounds` (then the end). */
function expectedAfter(ticks: readonly NormalizedTick[], ...bounds: number[]) {
  return expectedInstruments(ticks, {
    windows: WINDOWS,
    allowedLatenessMs: 5000,
    watermarksAt: watermarksAt(...bounds),
  });
}

/**
 * A node on `env` that has applied the first half of `input` exactly; `exited()` says whether
 * its process ended since (a fault must not stop it).
 */
async function nodeAfterFirstHalf(env: TestEnv, input: readonly NormalizedTick[]) {
  const node = await spawnNode(env.env);
  let exited = false;
  void node.exited.then(() => (exited = true));
  const half = input.length / 2;
  try {
    await waitReady(node);
    await produceTicks(env, input.slice(0, half));
    await waitExact(env, expectedAfter(input.slice(0, half), 0, half), node);
  } catch (err) {
    await node.kill("SIGKILL");
    throw err;
  }
  return { node, exited: () => exited };
}

async function readyParts(node: NodeProcess): Promise<{ status: number; failing: string[] }> {
  const res = await fetch(`${node.url}/ready`);
  const body = await res.json();
  return { status: res.status, failing: body.failing ?? [] };
}

for (const aof of [false, true]) {
  Deno.test({
    name: aof
      ? "Redis killed mid-stream and restarted from its AOF: the node stays up, results exact"
      : "Redis killed mid-stream and started empty: the node stays up, /ready says redis, results exact",
    sanitizeResources: false,
    sanitizeOps: false,
    fn: () => redisOutage(aof),
  });
}

async function redisOutage(aof: boolean): Promise<void> {
  const [port] = sparePorts(1) as [number];
  const aofDir = aof ? await Deno.makeTempDir({ prefix: "dp-redis-" }) : undefined;
  let redis = await startRedis(port, aofDir);
  const env = await faultEnv({
    DATA_PROC_REDIS_URL: `redis://127.0.0.1:${port}/0`,
  });
  const input = faultTicks(31, 200, 30_000);
  const expected = expectedAfter(input, 0, 15_000, 30_000);
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
    // Without AOF it comes back empty: snapshots, fences and stored offsets are gone. With
    // it, it comes back as of its last fsync: possibly a second behind what was written.
    redis = await startRedis(port, aofDir);

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
    if (aofDir) await Deno.remove(aofDir, { recursive: true });
  }
}

Deno.test({
  name:
    "Redis started empty after a replay: rebuilt keys write versions above the stored rows, exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const [port] = sparePorts(1) as [number];
    let redis = await startRedis(port);
    const env = await faultEnv({ DATA_PROC_REDIS_URL: `redis://127.0.0.1:${port}/0` });
    const input = faultTicks(34, 20, 16_000);
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      // 45 minutes of the 2 h: the second part keeps adding to the 1h bars the replay wrote.
      await produceTicks(env, input.slice(0, 6000));
      await waitExact(env, expectedAfter(input.slice(0, 6000), 0, 6000), node);
      await announced(node);
      // A replay lifts the keys' versions far above what their events alone give.
      const accepted = await requestReplay(node, env, { kind: "instrument", prefix: "INST-" });
      assert.equal(accepted.status, 202);
      await waitJob(node, env, accepted.body.job_id);
      // Redis comes back empty: every partition is rebuilt from the start of its log, and
      // the versions it writes must still beat the rows the replay left in ClickHouse.
      await stopRedis(redis);
      redis = await startRedis(port);
      await produceTicks(env, input.slice(6000));
      await waitExact(env, expectedAfter(input, 0, 6000, 16_000), node);
      assert.equal(await conflictingVersions(env), 0);
    } finally {
      await node.kill("SIGKILL");
      await stopRedis(redis);
      await env.cleanup();
    }
  },
});

Deno.test({
  name:
    "ClickHouse stopped while a replay holds its keys: the replay retries once it is back, exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const clickhouse = await ownClickHouse();
    const env = await faultEnv({
      DATA_PROC_CLICKHOUSE_URL: clickhouse.url,
      DATA_PROC_REPLAY_MAX_RECORDS_PER_S: "2000", // a read long enough to stop ClickHouse inside it
    });
    const input = faultTicks(33, 40, 16_000);
    const node = await spawnNode(env.env);
    const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
    try {
      await waitReady(node);
      await produceTicks(env, input.slice(0, 12_000));
      await waitExact(env, expectedAfter(input.slice(0, 12_000), 0, 12_000), node);
      // A corrupted projection the replay must repair, so its result is seen to land.
      const latestKey = `${env.config.DATA_PROC_REDIS_PREFIX}projection:latest:INST-0004`;
      const latest = JSON.parse((await redis.get(latestKey))!);
      await redis.set(latestKey, JSON.stringify({ ...latest, price: -1 }));
      await announced(node);

      const accepted = await requestReplay(node, env, {
        kind: "instrument",
        from_key: "INST-0001",
        to_key: "INST-0009",
      });
      assert.equal(accepted.status, 202);
      const current = () => job(node, env, accepted.body.job_id);
      await pollUntil("replay reading", async () => {
        const view = await current();
        if (view.status !== "running" && view.status !== "pending") {
          throw new Error(`replay ${view.status} before the outage: ${JSON.stringify(view)}`);
        }
        return view.progress.percent > 5 ? true : undefined;
      }, { intervalMs: 50 });
      await clickhouse.stop();
      await produceTicks(env, input.slice(12_000));
      // ClickHouse stays down until the replay's attempt has failed on it.
      await pollUntil("the replay's first attempt failed", async () => {
        const view = await current();
        if (view.status === "done") throw new Error("the replay ended before the outage hit it");
        return view.nodes[0]?.error ? true : undefined;
      }, { timeoutMs: 120_000 });
      await clickhouse.start();

      const done = await waitJob(node, env, accepted.body.job_id);
      assert.ok(
        done.nodes[0].attempt >= 2,
        `the outage failed no attempt: ${JSON.stringify(done)}`,
      );
      await waitExact(env, expectedAfter(input, 0, 12_000, 16_000), node);
      assert.equal(await conflictingVersions(env), 0);
    } finally {
      await node.kill("SIGKILL");
      await closeRedis(redis);
      await clickhouse.cleanup(env);
    }
  },
});

Deno.test({
  name:
    "ClickHouse stopped mid-stream, then started: the node stays up, /ready 503 then 200, exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const clickhouse = await ownClickHouse();
    const env = await faultEnv({ DATA_PROC_CLICKHOUSE_URL: clickhouse.url });
    const input = faultTicks(32, 200, 30_000);
    const expected = expectedAfter(input, 0, 15_000, 30_000);
    const { node, exited } = await nodeAfterFirstHalf(env, input);
    try {
      await clickhouse.stop();
      await produceTicks(env, input.slice(15_000));
      // The outage lasts until a flush has failed on it (and /ready says both).
      await pollUntil("/ready names clickhouse and the failing flush", async () => {
        const ready = await readyParts(node);
        return ready.status === 503 && ready.failing.includes("clickhouse") &&
            ready.failing.includes("flush")
          ? true
          : undefined;
      }, { timeoutMs: 60_000 });
      await clickhouse.start();

      await waitExact(env, expected, node);
      assert.equal(await conflictingVersions(env), 0);
      await pollUntil("/ready 200 again", async () => {
        return (await readyParts(node)).status === 200 ? true : undefined;
      });
      assert.equal(exited(), false, "the node must stay up");
    } finally {
      await node.kill("SIGKILL");
      await clickhouse.cleanup(env);
    }
  },
});

Deno.test({
  name:
    "a replay whose writes fail in its worker thread counts them in the node's /metrics, then retries",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await faultEnv({});
    const gold = env.config.DATA_PROC_CLICKHOUSE_GOLD_DB;
    const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
    const input = faultTicks(34, 20, 6_000);
    const node = await spawnNode(env.env);
    const failures = () =>
      metricValue(node, 'data_processing_sink_failures_total{sink="clickhouse"}');
    try {
      await waitReady(node);
      await produceTicks(env, input);
      await waitExact(env, expectedAfter(input, 0, 6_000), node);
      await announced(node);
      assert.equal(await failures(), 0);
      // No live events: only the replay's worker inserts gold bars, into a stand-in that
      // refuses every bar row (no such columns) but answers the version-base query.
      await ch.command({ query: `RENAME TABLE ${gold}.bars TO ${gold}.bars_away` });
      await ch.command({
        query: `CREATE TABLE ${gold}.bars (instrument_id String, version UInt64) ENGINE = Memory`,
      });
      const accepted = await requestReplay(node, env, {
        kind: "instrument",
        from_key: "INST-0003",
        to_key: "INST-0003",
      });
      assert.equal(accepted.status, 202);
      await pollUntil("the replay's first attempt failed", async () => {
        const view = await job(node, env, accepted.body.job_id);
        if (view.status === "done") throw new Error("the replay wrote no bars to fail on");
        return view.nodes[0]?.error ? true : undefined;
      }, { timeoutMs: 60_000 });
      assert.ok(await failures() >= 1, "the worker's failed write is not in /metrics");
      await ch.command({ query: `DROP TABLE ${gold}.bars` });
      await ch.command({ query: `RENAME TABLE ${gold}.bars_away TO ${gold}.bars` });
      await waitJob(node, env, accepted.body.job_id);
      await waitExact(env, expectedAfter(input, 0, 6_000), node);
    } finally {
      await node.kill("SIGKILL");
      await ch.close();
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "the Kafka broker restarted mid-stream: the node stays up and the results are exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const ports = sparePorts(2);
    const dir = await Deno.makeTempDir({ prefix: "dp-kafka-" });
    let kafka = await startKafka(ports, dir);
    const env = await faultEnv({
      DATA_PROC_KAFKA_BOOTSTRAP: `127.0.0.1:${ports[0]}`,
    });
    const input = faultTicks(33, 200, 30_000);
    const { node, exited } = await nodeAfterFirstHalf(env, input);
    try {
      kafka.kill("SIGKILL");
      await kafka.status;
      await pollUntil("/ready names kafka", async () => {
        const ready = await readyParts(node);
        return ready.status === 503 && ready.failing.includes("kafka") ? true : undefined;
      });
      kafka = await startKafka(ports, dir);
      await produceTicks(env, input.slice(15_000));

      await waitExact(
        env,
        expectedAfter(input, 0, 15_000, 30_000),
        node,
      );
      assert.equal(await conflictingVersions(env), 0);
      await pollUntil("/ready 200 again", async () => {
        return (await readyParts(node)).status === 200 ? true : undefined;
      }, { timeoutMs: 60_000 });
      assert.equal(exited(), false, "the node must stay up");
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
      kafka.kill("SIGKILL");
      await kafka.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a rebalance while Redis stalls mid-flush: every partition keeps committing and is covered",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const [port] = sparePorts(1) as [number];
    const redis = await startRedis(port);
    const env = await faultEnv({
      DATA_PROC_REDIS_URL: `redis://127.0.0.1:${port}/0`,
      DATA_PROC_NORMALIZED_PARTITIONS: "6",
    });
    const input = faultTicks(34, 300, 40_000);
    const nodes: NodeProcess[] = [];
    try {
      const a = await spawnNode(env.env);
      nodes.push(a);
      const b = await spawnNode(env.env);
      nodes.push(b);
      await waitReady(a);
      await waitReady(b);
      await pollUntil("both nodes own partitions", async () => {
        const counts = [(await tickPartitions(a)).length, (await tickPartitions(b)).length];
        return counts[0]! > 0 && counts[1]! > 0 ? true : undefined;
      });
      await produceTicks(env, input.slice(0, 20_000));
      await waitExact(
        env,
        expectedAfter(input.slice(0, 20_000), 0, 20_000),
        a,
      );

      // Redis stalls (no answer, no refusal) with work to flush; b dies, so the group
      // rebalances and a takes every partition while its flush hangs on the stall.
      redis.kill("SIGSTOP");
      await produceTicks(env, input.slice(20_000, 30_000));
      await b.kill("SIGKILL");
      await pollUntil("a assigned every partition", () => {
        const joins = a.log().split("\n").filter((l) => l.includes('"msg":"partitions assigned"'));
        return Promise.resolve(joins.at(-1)?.includes("[0,1,2,3,4,5]") ? true : undefined);
      }, { timeoutMs: 60_000 });
      redis.kill("SIGCONT");
      await produceTicks(env, input.slice(30_000));

      await waitExact(
        env,
        expectedAfter(input, 0, 20_000, 30_000, 40_000),
        a,
      );
      assert.equal(await conflictingVersions(env), 0);
      await pollUntil("every partition owned by a, applied and committed", async () => {
        const owned = await tickPartitions(a);
        return owned.length === 6 && owned.every((p) => p.lag === 0) && await committedToEnd(env)
          ? true
          : undefined;
      }, { timeoutMs: 60_000 });
    } finally {
      for (const n of nodes) await n.kill("SIGKILL");
      redis.kill("SIGCONT");
      await stopRedis(redis);
      await env.cleanup();
    }
  },
});
