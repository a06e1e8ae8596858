/**
 * The operator HTTP surface against bad input, through `app.request()` (no port): every
 * row of the table gets a JSON 4xx `{error: {code, message}}`, never a 5xx. The app is the
 * node's (createApp + operatorRoutes) over real Redis, PostgreSQL and ClickHouse, without
 * consumers. Also: auth refusals (401, 403 when no token is configured) and their audit rows.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import type { Hono } from "hono";
import { createApp } from "../http/app.ts";
import { operatorRoutes } from "../http/operator_routes.ts";
import { HotKeys } from "../observability/hot_keys.ts";
import { createLogger, setLogLevel } from "../observability/logger.ts";
import { registry } from "../observability/metrics.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createPostgres } from "../stores/postgres.ts";
import { createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { actorService } from "../supervisors/actor_service.ts";
import { NodeRegistry } from "../supervisors/node_registry.ts";
import { freshEnv, type TestEnv } from "./support.ts";

const TOKEN = "test-admin-token";
const AUTH = { authorization: `Bearer ${TOKEN}` };

async function withApp(
  overrides: Record<string, string>,
  fn: (app: Hono, env: TestEnv, sql: ReturnType<typeof createPostgres>) => Promise<void>,
): Promise<void> {
  setLogLevel("error");
  const env = await freshEnv(overrides);
  const config = env.config;
  const redis = createRedis(config.DATA_PROC_REDIS_URL);
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 2 });
  const clickhouse = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  const keys = redisKeys(config.DATA_PROC_REDIS_PREFIX, config.DATA_PROC_GROUP_ID);
  const logger = createLogger("test");
  const store = new ActorStore(redis, keys);
  const deps = {
    config,
    logger,
    nodeId: "test-node",
    // No actor consumer: the real service over the real stores.
    actors: actorService({ config, logger, store, redis, clickhouse, actors: () => undefined }),
    nodes: new NodeRegistry(redis, keys),
    sql,
    hotKeys: new HotKeys({ capacity: 10 }),
    selfUrl: () => "http://127.0.0.1:1",
  };
  const app = createApp({
    logger,
    registry,
    readiness: () => Promise.resolve({ ready: true, parts: {} }),
    routes: [operatorRoutes(deps)],
  });
  try {
    await fn(app, env, sql);
  } finally {
    await sql.end();
    await clickhouse.close();
    await redis.quit();
    await env.cleanup();
    setLogLevel("info");
  }
}

interface Row {
  name: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: BodyInit;
  status: number;
  code: string;
}

const big = JSON.stringify({ reason: "x".repeat(70 * 1024) });
const reset = "/actors/instrument/INST-0001/reset";

const TABLE: Row[] = [
  { name: "unknown kind", path: "/actors/bogus/INST-1", status: 400, code: "bad_kind" },
  { name: "key with a space", path: "/actors/instrument/a%20b", status: 400, code: "bad_key" },
  { name: "key with bad escapes", path: "/actors/instrument/%ZZ%E0", status: 400, code: "bad_key" },
  {
    name: "key too long",
    path: `/actors/instrument/${"k".repeat(201)}`,
    status: 400,
    code: "bad_key",
  },
  { name: "key with a quote", path: "/actors/curve/a'b", status: 400, code: "bad_key" },
  { name: "unknown key", path: "/actors/instrument/NOPE-1", status: 404, code: "not_found" },
  { name: "unknown query on GET key", path: "/actors/curve/C?x=1", status: 400, code: "bad_query" },
  { name: "list: unknown kind", path: "/actors?kind=tick", status: 400, code: "bad_kind" },
  { name: "list: limit 0", path: "/actors?limit=0", status: 400, code: "bad_limit" },
  { name: "list: limit 1001", path: "/actors?limit=1001", status: 400, code: "bad_limit" },
  { name: "list: limit text", path: "/actors?limit=ten", status: 400, code: "bad_limit" },
  { name: "list: negative limit", path: "/actors?limit=-5", status: 400, code: "bad_limit" },
  { name: "list: huge limit", path: "/actors?limit=1e309", status: 400, code: "bad_limit" },
  { name: "list: glob prefix", path: "/actors?prefix=*", status: 400, code: "bad_prefix" },
  { name: "list: unknown param", path: "/actors?kinds=curve", status: 400, code: "bad_query" },
  { name: "hot keys: bad limit", path: "/hot-keys?limit=x", status: 400, code: "bad_limit" },
  { name: "hot keys: bad scope", path: "/hot-keys?scope=all", status: 400, code: "bad_scope" },
  { name: "partitions: unknown param", path: "/partitions?x", status: 400, code: "bad_query" },
  { name: "unknown route", path: "/nope", status: 404, code: "not_found" },
  {
    name: "unknown method",
    method: "DELETE",
    path: "/actors/instrument/X",
    status: 404,
    code: "not_found",
  },
  { name: "reset: no token", method: "POST", path: reset, status: 401, code: "unauthorized" },
  {
    name: "reset: wrong token",
    method: "POST",
    path: reset,
    headers: { authorization: "Bearer wrong" },
    status: 401,
    code: "unauthorized",
  },
  {
    name: "reset: token as Basic",
    method: "POST",
    path: reset,
    headers: { authorization: `Basic ${TOKEN}` },
    status: 401,
    code: "unauthorized",
  },
  {
    name: "reset: token prefix only",
    method: "POST",
    path: reset,
    headers: { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    status: 401,
    code: "unauthorized",
  },
  {
    name: "reset: unknown kind",
    method: "POST",
    path: "/actors/tick/X/reset",
    headers: AUTH,
    status: 400,
    code: "bad_kind",
  },
  {
    name: "reset: malformed JSON",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: "{not json",
    status: 400,
    code: "bad_json",
  },
  {
    name: "reset: wrong JSON type",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify({ requested_by: 42 }),
    status: 400,
    code: "invalid_body",
  },
  {
    name: "reset: array body",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: "[1,2]",
    status: 400,
    code: "invalid_body",
  },
  {
    name: "reset: unknown field",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify({ dry_run: true }),
    status: 400,
    code: "invalid_body",
  },
  {
    name: "reset: null body",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: "null",
    status: 400,
    code: "invalid_body",
  },
  {
    name: "reset: not UTF-8",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
    status: 400,
    code: "bad_json",
  },
  {
    name: "reset: text/plain body",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "text/plain" },
    body: "{}",
    status: 415,
    code: "unsupported_media_type",
  },
  {
    name: "reset: body over 64 KiB",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: big,
    status: 413,
    code: "body_too_large",
  },
  {
    name: "reset: streamed body over 64 KiB (no content-length)",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: ReadableStream.from([new TextEncoder().encode(big)]),
    status: 413,
    code: "body_too_large",
  },
  {
    name: "reset: bad X-Requested-By",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "x-requested-by": "n".repeat(101) },
    status: 400,
    code: "bad_requested_by",
  },
  {
    name: "reset: requested_by too long",
    method: "POST",
    path: reset,
    headers: { ...AUTH, "content-type": "application/json" },
    body: JSON.stringify({ requested_by: "n".repeat(101) }),
    status: 400,
    code: "bad_requested_by",
  },
  {
    name: "reset: unknown key",
    method: "POST",
    path: "/actors/curve/NO-SUCH-CURVE/reset",
    headers: AUTH,
    status: 404,
    code: "not_found",
  },
];

Deno.test("every bad operator request gets a JSON 4xx with an error code, never a 5xx", async () => {
  await withApp({}, async (app) => {
    const failures: string[] = [];
    for (const row of TABLE) {
      const res = await app.request(row.path, {
        method: row.method ?? "GET",
        ...(row.headers ? { headers: row.headers } : {}),
        ...(row.body !== undefined ? { body: row.body } : {}),
      });
      const text = await res.text();
      let body: { error?: { code?: unknown; message?: unknown } } = {};
      try {
        body = JSON.parse(text);
      } catch {
        failures.push(`${row.name}: not JSON: ${text.slice(0, 100)}`);
        continue;
      }
      if (res.status !== row.status || body.error?.code !== row.code) {
        failures.push(`${row.name}: got ${res.status} ${text.slice(0, 160)}`);
      }
      if (typeof body.error?.message !== "string") failures.push(`${row.name}: no message`);
      if (!(res.headers.get("content-type") ?? "").startsWith("application/json")) {
        failures.push(`${row.name}: content-type ${res.headers.get("content-type")}`);
      }
    }
    deepStrictEqual(failures, []);
  });
});

Deno.test("refused admin requests are audited with the reason and no token", async () => {
  await withApp({}, async (app, _env, sql) => {
    for (const headers of [{}, { authorization: "Bearer not-the-token" }]) {
      const res = await app.request(reset, { method: "POST", headers });
      strictEqual(res.status, 401);
      await res.body?.cancel();
    }
    const rows = await sql<
      { actor: string; action: string; outcome: string; details: Record<string, unknown> }[]
    >`
      SELECT actor, action, outcome, details FROM audit_log ORDER BY id`;
    deepStrictEqual(rows.map((r) => [r.action, r.outcome, r.details.reason]), [
      ["actor.reset", "refused", "missing_token"],
      ["actor.reset", "refused", "wrong_token"],
    ]);
    strictEqual(rows[0]!.actor, "unauthenticated");
    ok(/^unauthenticated token:[0-9a-f]{8}$/.test(rows[1]!.actor));
    for (const r of rows) ok(!JSON.stringify(r).includes("not-the-token"));
  });
});

Deno.test("with no admin token configured, admin endpoints answer 403 admin_disabled", async () => {
  await withApp({ DATA_PROC_ADMIN_TOKEN: "" }, async (app, _env, sql) => {
    for (const headers of [{}, AUTH, { authorization: "Bearer " }]) {
      const res = await app.request(reset, { method: "POST", headers });
      strictEqual(res.status, 403);
      strictEqual((await res.json()).error.code, "admin_disabled");
    }
    // Read endpoints stay open.
    const list = await app.request("/actors");
    strictEqual(list.status, 200);
    await list.body?.cancel();
    const rows = await sql<{ outcome: string }[]>`SELECT outcome FROM audit_log`;
    deepStrictEqual(rows.map((r) => r.outcome), ["refused", "refused", "refused"]);
  });
});
