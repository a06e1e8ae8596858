/**
 * The operator HTTP surface on real nodes (child processes of main.ts) over the real stack:
 * inspect live and passivated keys, list, partitions, hot keys, unknown keys, auth failures
 * and bad input, reset semantics with its audit row, metrics that pass `promtool check
 * metrics` and move as events flow, and with two nodes, answers and resets forwarded to the
 * key's owner.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { createClickHouse, queryRows } from "../stores/clickhouse.ts";
import { createPostgres } from "../stores/postgres.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { createTopics, produceTicks } from "./actor_harness.ts";
import { generateTicks } from "./expected.ts";
import { type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil, type TestEnv } from "./support.ts";

const TOKEN = "test-admin-token";
const AUTH = { authorization: `Bearer ${TOKEN}` };
const START_MS = Date.UTC(2026, 10, 20, 9, 0, 0);

interface Answer {
  status: number;
  // deno-lint-ignore no-explicit-any
  body: any;
  headers: Headers;
}

async function call(
  node: NodeProcess,
  path: string,
  init: RequestInit = {},
): Promise<Answer> {
  const res = await fetch(`${node.url}${path}`, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // metrics and other text answers
  }
  return { status: res.status, body, headers: res.headers };
}

function ticks(count: number, instruments: number, seed: number): NormalizedTick[] {
  return generateTicks({
    seed,
    instruments,
    count,
    startMs: START_MS,
    spreadMs: 3_600_000,
    outOfOrderRatio: 0,
    duplicateRatio: 0,
  });
}

/** New ticks for one instrument, later than everything generated, with fresh ids. */
function laterTicks(template: NormalizedTick, n: number, tag: string): NormalizedTick[] {
  return Array.from({ length: n }, (_, i) => ({
    ...template,
    event_id: `${tag}-${i}`,
    event_time_ms: START_MS + 2 * 3_600_000 + i * 1000,
    price: 100 + i,
    size: 1,
    ingest_time_ms: Date.now(),
  }));
}

async function setup(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const env = await freshEnv({
    DATA_PROC_NORMALIZER_ENABLED: "false",
    DATA_PROC_BAR_WINDOWS: "1m,1h",
    ...overrides,
  });
  await createTopics(env);
  return env;
}

async function promtool(text: string): Promise<{ code: number; output: string }> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const out = await child.output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: `${decode(out.stdout)}${decode(out.stderr)}` };
}

function metricValue(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

Deno.test({
  name:
    "one node: inspect live and passivated keys, list, partitions, hot keys, bad input, reset, audit and metrics",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await setup({
      DATA_PROC_MAX_LIVE_ACTORS: "10",
      DATA_PROC_ACTOR_IDLE_PASSIVATE_MS: "300",
    });
    const prefix = env.config.DATA_PROC_REDIS_PREFIX;
    const gold = env.config.DATA_PROC_CLICKHOUSE_GOLD_DB;
    const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
    const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
    const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      const input = ticks(3000, 40, 11);
      await produceTicks(env, input);

      // Listing: every instrument is stored once flushed; sorted, limited, deduplicated.
      const all = await pollUntil("40 instruments listed", async () => {
        const r = await call(node, "/actors?kind=instrument&limit=1000");
        return r.body.count === 40 ? r.body : undefined;
      });
      const keys = all.actors.map((a: { key: string }) => a.key);
      deepStrictEqual(keys, [...keys].sort());
      strictEqual(new Set(keys).size, 40);
      for (const a of all.actors) {
        ok(["live", "passivated"].includes(a.status), JSON.stringify(a));
        strictEqual(a.owner, (await call(node, "/partitions")).body.node_id);
      }
      const page = await call(node, "/actors?kind=instrument&prefix=INST-00&limit=5");
      strictEqual(page.status, 200);
      deepStrictEqual(page.body.actors.map((a: { key: string }) => a.key), keys.slice(0, 5));
      strictEqual(page.body.truncated, true);
      const both = await call(node, "/actors?limit=1000");
      strictEqual(both.body.count, 40); // no curves were produced
      strictEqual((await call(node, "/actors?prefix=NOPE")).body.count, 0);

      // Passivated keys (cap of 10 live actors) answer from their snapshot.
      const passivated = await pollUntil("a passivated key", async () => {
        for (const key of keys) {
          const r = await call(node, `/actors/instrument/${key}`);
          if (r.status === 200 && r.body.status === "passivated") return r.body;
        }
        return undefined;
      });
      ok(Number.isInteger(passivated.partition));
      ok(passivated.applied_offset >= 0);
      ok(Array.isArray(passivated.last_events) && passivated.last_events.length > 0);
      // Read from the snapshot, which stores them by column: the same entries as a live key's.
      ok(
        passivated.last_events.every((e: { event_id?: unknown }) => typeof e.event_id === "string"),
      );
      ok(passivated.context !== null && passivated.event_time_clock_ms > START_MS);
      strictEqual(passivated.mailbox_depth, 0);

      // A key that just received an event is live, with its state.
      const hot = input.find((t) => t.instrument_id === "INST-0001")!;
      await produceTicks(env, laterTicks(hot, 1, "live"));
      const live = await pollUntil("INST-0001 live after a new event", async () => {
        const r = await call(node, "/actors/instrument/INST-0001");
        return r.body.status === "live" &&
            r.body.last_events.some((e: { event_id?: string }) =>
              JSON.stringify(e).includes("live-0")
            )
          ? r.body
          : undefined;
      }, { intervalMs: 50 });
      strictEqual(live.key, "INST-0001");
      // The clock it is judged by is its partition's, moved by the watermark written after
      // the event (live or passivated again: the cap of 10 passivates it soon).
      await pollUntil("INST-0001 judged by the clock after its event", async () => {
        const r = await call(node, "/actors/instrument/INST-0001");
        return r.body.event_time_clock_ms === START_MS + 2 * 3_600_000 ? true : undefined;
      });

      // Unknown keys, bad input and auth failures through the real node.
      strictEqual((await call(node, "/actors/instrument/INST-9999")).status, 404);
      strictEqual((await call(node, "/actors/curve/INST-0001")).status, 404);
      for (
        const [path, init, status] of [
          ["/actors/bogus/x", {}, 400],
          ["/actors?limit=5000", {}, 400],
          ["/actors/instrument/INST-0002/reset", { method: "POST" }, 401],
          ["/actors/instrument/INST-0002/reset", {
            method: "POST",
            headers: { authorization: "Bearer nope" },
          }, 401],
          ["/actors/instrument/INST-0002/reset", {
            method: "POST",
            headers: { ...AUTH, "content-type": "application/json" },
            body: "{",
          }, 400],
          ["/actors/instrument/INST-0002/reset", {
            method: "POST",
            headers: { ...AUTH, "content-type": "application/json" },
            body: JSON.stringify({ reason: "x".repeat(100_000) }),
          }, 413],
          ["/nowhere", { method: "PUT", body: "x" }, 404],
        ] as [string, RequestInit, number][]
      ) {
        const r = await call(node, path, init);
        strictEqual(r.status, status, `${path}: ${JSON.stringify(r.body)}`);
        strictEqual(typeof r.body.error.code, "string");
      }

      // Partitions and hot keys.
      const parts = await call(node, "/partitions");
      strictEqual(parts.body.partitions.length, 6);
      ok(parts.body.partitions.every((p: { lag: number | null }) => p.lag === null || p.lag >= 0));
      strictEqual(parts.body.nodes.length, 1);
      const hotKeys = await call(node, "/hot-keys?limit=5");
      strictEqual(hotKeys.body.keys.length, 5);
      const rates = hotKeys.body.keys.map((h: { rate_per_s: number }) => h.rate_per_s);
      deepStrictEqual(rates, [...rates].sort((a, b) => b - a));
      ok(rates[0] > 0);
      strictEqual((await call(node, "/hot-keys?scope=cluster&limit=3")).body.keys.length, 3);

      // Reset: state empty, projections gone, new events get versions above the old ones.
      const target = "INST-0003";
      const before = JSON.parse((await redis.get(`${prefix}projection:latest:${target}`))!);
      const reset = await call(node, `/actors/instrument/${target}/reset`, {
        method: "POST",
        headers: { ...AUTH, "x-requested-by": "ops-test", "content-type": "application/json" },
        body: JSON.stringify({ reason: "test reset" }),
      });
      strictEqual(reset.status, 200, JSON.stringify(reset.body));
      strictEqual(reset.body.kind, "instrument");
      strictEqual(reset.body.key, target);
      ok(
        reset.body.version_base > before.version,
        `${reset.body.version_base} > ${before.version}`,
      );
      const after = await call(node, `/actors/instrument/${target}`);
      strictEqual(after.status, 200);
      strictEqual(after.body.context.applied, 0);
      strictEqual(after.body.context.latest, null);
      deepStrictEqual(Object.values(after.body.context.bars).flat(), []);
      deepStrictEqual(
        await redis.mget(
          `${prefix}projection:latest:${target}`,
          `${prefix}projection:bar:1m:${target}`,
          `${prefix}projection:bar:1h:${target}`,
        ),
        [null, null, null],
      );
      await pollUntil("gold rows of the reset key deleted", async () => {
        const rows = await queryRows<{ n: string }>(
          ch,
          `SELECT count() AS n FROM ${gold}.bars WHERE instrument_id = '${target}'`,
        );
        return Number(rows[0]!.n) === 0 ? true : undefined;
      });
      const other = await queryRows<{ n: string }>(
        ch,
        `SELECT count() AS n FROM ${gold}.bars WHERE instrument_id = 'INST-0004'`,
      );
      ok(Number(other[0]!.n) > 0, "other keys keep their gold rows");
      ok(await redis.get(`${prefix}projection:latest:INST-0004`), "other keys keep projections");

      const template = input.find((t) => t.instrument_id === target)!;
      await produceTicks(env, laterTicks(template, 5, "after-reset"));
      const latest = await pollUntil("a new latest price after the reset", async () => {
        const v = await redis.get(`${prefix}projection:latest:${target}`);
        return v ? JSON.parse(v) : undefined;
      });
      strictEqual(latest.event_id, "after-reset-4");
      ok(latest.version >= reset.body.version_base);
      const newBars = await pollUntil("gold bars after the reset", async () => {
        const rows = await queryRows<{ version: string }>(
          ch,
          `SELECT version FROM ${gold}.bars WHERE instrument_id = '${target}'`,
        );
        return rows.length > 0 ? rows : undefined;
      });
      ok(newBars.every((r) => Number(r.version) > before.version));
      strictEqual((await call(node, `/actors/instrument/${target}`)).body.context.applied, 5);

      // Unknown key reset: 404, audited as failed.
      const missing = await call(node, "/actors/instrument/INST-4040/reset", {
        method: "POST",
        headers: AUTH,
      });
      strictEqual(missing.status, 404);

      // Audit rows for each admin action.
      const audit = await sql<
        {
          actor: string;
          action: string;
          outcome: string;
          target: Record<string, unknown>;
          details: Record<string, unknown>;
        }[]
      >`SELECT actor, action, outcome, target, details FROM audit_log ORDER BY id`;
      const ok1 = audit.filter((r) => r.outcome === "ok");
      strictEqual(ok1.length, 1);
      strictEqual(ok1[0]!.action, "actor.reset");
      deepStrictEqual(ok1[0]!.target, { kind: "instrument", key: target });
      ok(/^token:[0-9a-f]{8} as ops-test$/.test(ok1[0]!.actor), ok1[0]!.actor);
      strictEqual(ok1[0]!.details.version_base, reset.body.version_base);
      strictEqual(ok1[0]!.details.reason, "test reset");
      deepStrictEqual(
        audit.filter((r) => r.outcome === "refused").map((r) => r.details.reason).sort(),
        ["missing_token", "wrong_token"],
      );
      deepStrictEqual(
        audit.filter((r) => r.outcome === "failed").map((r) => [r.target.key, r.details.error]),
        [["INST-4040", "not_found"]],
      );

      // Metrics: promtool accepts the exposition but for the names CONTRACT.md and the
      // event-time issue fix (abbreviated unit `ms`), and the counters move as events flow.
      const m1 = (await call(node, "/metrics")).body as string;
      const lint = await promtool(m1);
      const problems = lint.output.split("\n").filter((l) => l.trim() !== "");
      deepStrictEqual(
        problems.filter((l) =>
          !l.startsWith("processing_latency_ms ") &&
          !l.startsWith("data_processing_watermark_lag_ms ")
        ),
        [],
        lint.output,
      );
      const applied = 'data_processing_events_total{stage="aggregate",outcome="applied"}';
      ok(metricValue(m1, applied) >= 3000);
      ok(metricValue(m1, 'processing_latency_ms_count{stage="aggregate"}') >= 3000);
      ok(metricValue(m1, "data_processing_flush_duration_seconds_count") > 0);
      ok(metricValue(m1, 'data_processing_rebalances_total{consumer="actors"}') >= 1);
      ok(metricValue(m1, 'data_processing_actor_passivations_total{kind="instrument"}') > 0);
      strictEqual(metricValue(m1, 'data_processing_stored_actors{kind="instrument"}'), 40);
      strictEqual(
        metricValue(m1, 'data_processing_admin_actions_total{action="actor.reset",outcome="ok"}'),
        1,
      );
      ok(
        metricValue(
          m1,
          'data_processing_http_requests_total{method="GET",route="/actors/:kind/:key{.+}",status="2xx"}',
        ) > 0,
      );
      ok(
        metricValue(
          m1,
          'data_processing_consumer_lag{topic="' +
            `t${env.id}.normalized.market.ticks.v1",partition="0"}`,
        ) >= 0,
      );
      await produceTicks(env, laterTicks(template, 100, "more"));
      await pollUntil("applied counter up by 100", async () => {
        const m2 = (await call(node, "/metrics")).body as string;
        return metricValue(m2, applied) >= metricValue(m1, applied) + 100 ? true : undefined;
      });
      strictEqual(await node.kill("SIGTERM"), 0);
    } finally {
      await node.kill("SIGKILL");
      await closeRedis(redis);
      await ch.close();
      await sql.end();
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "two nodes: a key owned by the other node is answered and reset by its owner",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await setup();
    const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
    const a = await spawnNode(env.env);
    let b: NodeProcess | undefined;
    try {
      await waitReady(a);
      b = await spawnNode(env.env);
      await waitReady(b);
      const nodeB = b;
      const idA = (await call(a, "/partitions")).body.node_id as string;
      const idB = (await call(nodeB, "/partitions")).body.node_id as string;
      // Both nodes own partitions and announce them.
      await pollUntil("both nodes own partitions", async () => {
        const nodes = (await call(a, "/partitions")).body.nodes as {
          node_id: string;
          partitions: unknown[];
        }[];
        const owners = nodes.filter((n) => n.partitions.length > 0).map((n) => n.node_id).sort();
        const own = [(await call(a, "/partitions")).body, (await call(nodeB, "/partitions")).body];
        return owners.length === 2 && own.every((p) => p.partitions.length > 0) ? true : undefined;
      }, { timeoutMs: 90_000 });

      const input = ticks(2000, 30, 12);
      await produceTicks(env, input);
      const listed = await pollUntil("every key stored and owned", async () => {
        const r = await call(a, "/actors?kind=instrument&limit=1000");
        return r.body.count === 30 && r.body.actors.every((x: { owner: string | null }) => x.owner)
          ? r.body.actors as { key: string; status: string; owner: string }[]
          : undefined;
      }, { timeoutMs: 90_000 });
      const remote = listed.find((x) => x.owner === idB);
      const local = listed.find((x) => x.owner === idA);
      ok(remote && remote.status === "remote", JSON.stringify(listed));
      ok(local && local.status === "live", JSON.stringify(listed));

      // GET from the wrong node: answered by the owner, live, never from the stale snapshot.
      const viaA = await call(a, `/actors/instrument/${remote.key}`);
      strictEqual(viaA.status, 200);
      strictEqual(viaA.body.node_id, idB);
      strictEqual(viaA.body.status, "live");
      strictEqual(viaA.headers.get("x-dp-served-by"), idB);
      const direct = await call(nodeB, `/actors/instrument/${remote.key}`);
      deepStrictEqual(viaA.body.applied_offset, direct.body.applied_offset);
      strictEqual((await call(a, `/actors/instrument/${local.key}`)).body.node_id, idA);
      strictEqual((await call(a, "/actors/instrument/INST-9999")).status, 404);

      // Hot keys across the cluster carry both nodes.
      const hot = await call(a, "/hot-keys?scope=cluster&limit=1000");
      deepStrictEqual(
        [...new Set(hot.body.keys.map((h: { node_id: string }) => h.node_id))].sort(),
        [idA, idB].sort(),
      );

      // Reset through the wrong node: done and audited by the owner.
      const reset = await call(a, `/actors/instrument/${remote.key}/reset`, {
        method: "POST",
        headers: { ...AUTH, "content-type": "application/json" },
        body: JSON.stringify({ requested_by: "two-node-test" }),
      });
      strictEqual(reset.status, 200, JSON.stringify(reset.body));
      strictEqual(reset.body.node_id, idB);
      strictEqual(reset.headers.get("x-dp-served-by"), idB);
      strictEqual((await call(nodeB, `/actors/instrument/${remote.key}`)).body.context.applied, 0);
      const rows = await sql<
        { actor: string; outcome: string; details: Record<string, unknown> }[]
      >`
        SELECT actor, outcome, details FROM audit_log WHERE action = 'actor.reset'`;
      strictEqual(rows.length, 1);
      strictEqual(rows[0]!.outcome, "ok");
      strictEqual(rows[0]!.details.node_id, idB);
      strictEqual(rows[0]!.details.forwarded_from, idA);
      ok(rows[0]!.actor.endsWith(" as two-node-test"));
      // Wrong token through the wrong node: refused before any forwarding.
      const refused = await call(a, `/actors/instrument/${remote.key}/reset`, {
        method: "POST",
        headers: { authorization: "Bearer wrong" },
      });
      strictEqual(refused.status, 401);
    } finally {
      await b?.kill("SIGKILL");
      await a.kill("SIGKILL");
      await sql.end();
      await env.cleanup();
    }
  },
});
