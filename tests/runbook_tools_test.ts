/**
 * The runbook tools (`reconcile`, `projection:reconcile`, `dq`) as real subprocesses against
 * real ClickHouse, Redis and PostgreSQL: data is planted directly in fresh silver/gold
 * tables and under a fresh Redis prefix; each tool passes on clean data and finds the
 * planted problem.
 */
import assert from "node:assert/strict";
import type { Bar } from "../messages/bar.ts";
import { createClickHouse, insertRows } from "../stores/clickhouse.ts";
import { createPostgres } from "../stores/postgres.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { freshEnv, type TestEnv } from "./support.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const HOUR = 3_600_000;
const MINUTE = 60_000;

interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
  // deno-lint-ignore no-explicit-any
  json: any;
}

async function runTool(t: TestEnv, file: string, args: string[]): Promise<ToolRun> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `tools/${file}`, ...args],
    cwd: ROOT,
    env: t.env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  let json: unknown = null;
  if (args.includes("--json") && stdout.trim().startsWith("{")) json = JSON.parse(stdout);
  return { code: out.code, stdout, stderr, json };
}

function expectCode(run: ToolRun, code: number): void {
  assert.equal(run.code, code, `exit ${run.code}, wanted ${code}\n${run.stdout}\n${run.stderr}`);
}

interface Tick {
  event_id: string;
  instrument_id: string;
  event_time_ms: number;
  price: number;
  size: number;
  ingest_time_ms?: number;
}

const dateTime = (ms: number) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");

function tickRow(t: Tick): Record<string, unknown> {
  return {
    event_id: t.event_id,
    instrument_id: t.instrument_id,
    event_time_ms: t.event_time_ms,
    event_time: dateTime(t.event_time_ms),
    price: t.price,
    size: t.size,
    source: "test",
    symbol: t.instrument_id,
    commodity: "power",
    region: "de",
    currency: "EUR",
    unit: "MWh",
    ingest_time_ms: t.ingest_time_ms ?? t.event_time_ms + 10,
  };
}

type GoldBar = Omit<Bar, "final" | "version">;

/** An independent reference of CONTRACT's bar semantics, written plainly in TypeScript. */
function referenceBars(ticks: Tick[], windows: { name: string; ms: number }[]): GoldBar[] {
  const unique = new Map(ticks.map((t) => [t.event_id, t]));
  const sorted = [...unique.values()].sort((a, b) =>
    a.event_time_ms - b.event_time_ms || (a.event_id < b.event_id ? -1 : 1)
  );
  const bars = new Map<string, { bar: GoldBar; notional: number }>();
  for (const w of windows) {
    for (const t of sorted) {
      const start = Math.floor(t.event_time_ms / w.ms) * w.ms;
      const key = `${t.instrument_id}|${w.name}|${start}`;
      const entry = bars.get(key);
      if (!entry) {
        bars.set(key, {
          bar: {
            instrument_id: t.instrument_id,
            resolution: w.name,
            start_ms: start,
            end_ms: start + w.ms,
            open: t.price,
            high: t.price,
            low: t.price,
            close: t.price,
            volume: t.size,
            vwap: t.price,
            count: 1,
          },
          notional: t.price * t.size,
        });
        continue;
      }
      const b = entry.bar;
      b.high = Math.max(b.high, t.price);
      b.low = Math.min(b.low, t.price);
      b.close = t.price;
      b.volume += t.size;
      b.count += 1;
      entry.notional += t.price * t.size;
      b.vwap = entry.notional / b.volume;
    }
  }
  return [...bars.values()].map((e) => e.bar);
}

function goldBarRow(b: GoldBar, version: number, final = true): Record<string, unknown> {
  return {
    ...b,
    start: dateTime(b.start_ms),
    final: final ? 1 : 0,
    version,
    event_time: dateTime(b.end_ms),
  };
}

const WINDOWS = [{ name: "1m", ms: MINUTE }, { name: "1h", ms: HOUR }];

Deno.test("reconcile passes on clean data, finds corrupted, extra and missing gold bars, and asks a node to replay them", async (t) => {
  const env = await freshEnv();
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  const silver = `${env.config.DATA_PROC_CLICKHOUSE_SILVER_DB}.ticks`;
  const gold = `${env.config.DATA_PROC_CLICKHOUSE_GOLD_DB}.bars`;
  const base = Math.floor((Date.now() - 3 * HOUR) / HOUR) * HOUR;
  const ticks: Tick[] = [
    // A tie on event time: the order is by event_id, so a0 opens and a1 follows.
    { event_id: "a1", instrument_id: "RC.A", event_time_ms: base + 1000, price: 10, size: 1 },
    { event_id: "a0", instrument_id: "RC.A", event_time_ms: base + 1000, price: 11, size: 2 },
    { event_id: "a2", instrument_id: "RC.A", event_time_ms: base + 61_000, price: 12, size: 1 },
    { event_id: "a3", instrument_id: "RC.A", event_time_ms: base + 62_000, price: -5, size: 3 },
    { event_id: "b1", instrument_id: "RC.B", event_time_ms: base + 120_000, price: 100, size: 1 },
    { event_id: "b2", instrument_id: "RC.B", event_time_ms: base + 120_500, price: 101, size: 0.5 },
  ];
  try {
    await insertRows(ch, silver, ticks.map(tickRow));
    // The same trade again in another part: counted once (FINAL).
    await insertRows(ch, silver, [tickRow(ticks[2]!)]);
    await insertRows(ch, gold, referenceBars(ticks, WINDOWS).map((b) => goldBarRow(b, 1)));

    await t.step("clean data: exit 0, no mismatches", async () => {
      const run = await runTool(env, "reconcile.ts", ["--window", "24h", "--json"]);
      expectCode(run, 0);
      assert.equal(run.json.summary.mismatches, 0);
      assert.deepEqual(run.json.mismatches, []);
      const text = await runTool(env, "reconcile.ts", ["--window", "24h"]);
      expectCode(text, 0);
      assert.match(text.stdout, /0 mismatches/);
    });

    const corrupted = referenceBars(ticks, WINDOWS).find((b) =>
      b.instrument_id === "RC.A" && b.resolution === "1m" && b.start_ms === base
    )!;
    await insertRows(ch, gold, [
      goldBarRow({ ...corrupted, close: 999 }, 2),
      goldBarRow({
        instrument_id: "RC.B",
        resolution: "1m",
        start_ms: base + 10 * MINUTE,
        end_ms: base + 11 * MINUTE,
        open: 1,
        high: 1,
        low: 1,
        close: 1,
        volume: 1,
        vwap: 1,
        count: 1,
      }, 1),
    ]);
    await insertRows(ch, silver, [
      tickRow({
        event_id: "c1",
        instrument_id: "RC.C",
        event_time_ms: base + 20 * MINUTE,
        price: 50,
        size: 2,
      }),
    ]);

    await t.step("planted problems: exit 1 with each mismatch listed", async () => {
      const run = await runTool(env, "reconcile.ts", ["--window", "24h", "--json"]);
      expectCode(run, 1);
      const got = run.json.mismatches.map((m: Record<string, unknown>) => ({
        kind: m.kind,
        instrument_id: m.instrument_id,
        resolution: m.resolution,
        start_ms: m.start_ms,
      }));
      assert.deepEqual(got, [
        { kind: "different", instrument_id: "RC.A", resolution: "1m", start_ms: base },
        {
          kind: "extra_in_gold",
          instrument_id: "RC.B",
          resolution: "1m",
          start_ms: base + 10 * MINUTE,
        },
        { kind: "missing_in_gold", instrument_id: "RC.C", resolution: "1h", start_ms: base },
        {
          kind: "missing_in_gold",
          instrument_id: "RC.C",
          resolution: "1m",
          start_ms: base + 20 * MINUTE,
        },
      ]);
      assert.deepEqual(run.json.mismatches[0].differences, [
        { field: "close", expected: 10, actual: 999 },
      ]);
      assert.deepEqual(
        [
          run.json.summary.different,
          run.json.summary.extra_in_gold,
          run.json.summary.missing_in_gold,
        ],
        [1, 1, 2],
      );
      const text = await runTool(env, "reconcile.ts", ["--window", "24h"]);
      expectCode(text, 1);
      assert.match(text.stdout, /different\s+RC\.A 1m .* close: silver=10 gold=999/);
      assert.match(text.stdout, /4 mismatches \(2 missing in gold, 1 extra in gold, 1 different\)/);
    });

    await t.step("--instrument-prefix and --from/--to narrow the comparison", async () => {
      const onlyC = await runTool(env, "reconcile.ts", ["--instrument-prefix", "RC.C", "--json"]);
      expectCode(onlyC, 1);
      assert.equal(onlyC.json.summary.mismatches, 2);
      const before = await runTool(env, "reconcile.ts", [
        "--from",
        new Date(base - 2 * HOUR).toISOString(),
        "--to",
        String(base),
        "--json",
      ]);
      expectCode(before, 0);
    });

    await t.step("bad arguments: exit 2 with a clear message", async () => {
      for (
        const args of [
          ["--window", "soon"],
          ["--from", "yesterday"],
          ["--bogus"],
          ["--window", "1h", "--from", "0"],
          ["--token", "x"],
        ]
      ) {
        const run = await runTool(env, "reconcile.ts", args);
        expectCode(run, 2);
        assert.match(run.stderr, /reconcile: .+/);
      }
      const help = await runTool(env, "reconcile.ts", ["--help"]);
      expectCode(help, 0);
      assert.match(help.stdout, /Usage: deno task reconcile/);
    });

    await t.step(
      "--repair asks the node to replay each mismatched instrument and audits it",
      async () => {
        // A stand-in for a node's replay API (POST /replay, GET /replay/{id}); it accepts and
        // finishes jobs without changing data, so the mismatches stay and the exit code is 1.
        const requests: { auth: string | null; body: Record<string, unknown> }[] = [];
        const server = Deno.serve(
          { port: 0, hostname: "127.0.0.1", onListen: () => {} },
          async (req) => {
            const url = new URL(req.url);
            if (req.headers.get("authorization") !== "Bearer test-admin-token") {
              return Response.json({ error: { code: "unauthorized", message: "bad token" } }, {
                status: 401,
              });
            }
            if (req.method === "POST" && url.pathname === "/replay") {
              const body = await req.json();
              requests.push({ auth: req.headers.get("authorization"), body });
              return Response.json({ job_id: `job-${requests.length}` }, { status: 202 });
            }
            if (req.method === "GET" && url.pathname.startsWith("/replay/")) {
              return Response.json({ job_id: url.pathname.slice(8), status: "done" });
            }
            return Response.json({ error: { code: "not_found", message: "no" } }, { status: 404 });
          },
        );
        try {
          const run = await runTool(env, "reconcile.ts", [
            "--window",
            "24h",
            "--repair",
            "--node-url",
            `http://127.0.0.1:${server.addr.port}`,
            "--verify-timeout",
            "1s",
            "--json",
          ]);
          expectCode(run, 1);
          const wrongToken = await runTool(env, "reconcile.ts", [
            "--instrument-prefix",
            "RC.C",
            "--repair",
            "--node-url",
            `http://127.0.0.1:${server.addr.port}`,
            "--token",
            "wrong",
            "--requested-by",
            "oncall",
            "--verify-timeout",
            "1s",
            "--json",
          ]);
          expectCode(wrongToken, 1);
          assert.deepEqual(wrongToken.json.repairs.map((r: { status: string }) => r.status), [
            "refused",
          ]);
          assert.deepEqual(
            run.json.repairs.map((r: Record<string, unknown>) => [r.instrument_id, r.status]),
            [["RC.A", "done"], ["RC.B", "done"], ["RC.C", "done"]],
          );
          assert.equal(run.json.summary.remaining, 4);
          assert.equal(requests.length, 3);
          const fromTime = run.json.summary.from_ms;
          for (const [i, key] of ["RC.A", "RC.B", "RC.C"].entries()) {
            assert.equal(requests[i]!.auth, "Bearer test-admin-token");
            assert.deepEqual(requests[i]!.body, {
              kind: "instrument",
              from_key: key,
              to_key: key,
              from_time: fromTime,
              requested_by: "reconcile",
            });
          }
        } finally {
          await server.shutdown();
        }
        const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
        try {
          const rows = await sql<{ actor: string; target: { key: string }; outcome: string }[]>`
          SELECT actor, target, outcome FROM audit_log
          WHERE action = 'reconcile.repair' AND actor = 'reconcile' ORDER BY id`;
          assert.deepEqual(
            rows.map((r) => [r.actor, r.target.key, r.outcome]),
            [["reconcile", "RC.A", "done"], ["reconcile", "RC.B", "done"], [
              "reconcile",
              "RC.C",
              "done",
            ]],
          );
          const refused = await sql<{ outcome: string; details: { http_status: number } }[]>`
          SELECT outcome, details FROM audit_log
          WHERE action = 'reconcile.repair' AND actor = 'oncall' ORDER BY id`;
          assert.deepEqual(refused.map((r) => [r.outcome, r.details.http_status]), [[
            "refused",
            401,
          ]]);
        } finally {
          await sql.end();
        }
      },
    );

    await t.step(
      "a bar with an event that reached silver after close is flagged as likely late",
      async () => {
        await insertRows(ch, silver, [
          tickRow({
            event_id: "l1",
            instrument_id: "RC.L",
            event_time_ms: base + 30 * MINUTE,
            ingest_time_ms: base + 90 * MINUTE,
            price: 1,
            size: 1,
          }),
        ]);
        const run = await runTool(env, "reconcile.ts", ["--instrument-prefix", "RC.L", "--json"]);
        expectCode(run, 1);
        assert.deepEqual(
          run.json.mismatches.map((
            m: { kind: string; silver: { arrived_after_close: number } },
          ) => [
            m.kind,
            m.silver.arrived_after_close,
          ]),
          [["missing_in_gold", 1], ["missing_in_gold", 1]],
        );
        const text = await runTool(env, "reconcile.ts", ["--instrument-prefix", "RC.L"]);
        assert.match(text.stdout, /likely late_event/);
      },
    );
  } finally {
    await ch.close();
    await env.cleanup();
  }
});

Deno.test("projection:reconcile passes on clean data, reports planted differences in a dry run, and repairs Redis with higher versions and audit rows", async (t) => {
  const env = await freshEnv();
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
  const p = `${env.config.DATA_PROC_REDIS_PREFIX}projection:`;
  const silver = env.config.DATA_PROC_CLICKHOUSE_SILVER_DB;
  const gold = env.config.DATA_PROC_CLICKHOUSE_GOLD_DB;
  const base = Math.floor((Date.now() - 3 * HOUR) / HOUR) * HOUR;
  const ticks: Tick[] = [
    { event_id: "x1", instrument_id: "PR.A", event_time_ms: base + 1000, price: 10, size: 1 },
    { event_id: "x3", instrument_id: "PR.A", event_time_ms: base + 61_000, price: 11, size: 2 },
    { event_id: "x2", instrument_id: "PR.A", event_time_ms: base + 61_000, price: 12, size: 4 },
    { event_id: "y1", instrument_id: "PR.B", event_time_ms: base + 5000, price: -3.5, size: 7 },
  ];
  const bars = referenceBars(ticks.filter((x) => x.instrument_id === "PR.A"), [WINDOWS[0]!]);
  const curveRows = [
    ["2024-05-01", "2025-01", 50, 1],
    ["2024-05-01", "2025-02", 51, 1],
    ["2024-05-02", "2025-Q1", 60, 1],
    ["2024-05-02", "2025-01", 52, 1],
    ["2024-05-02", "2025-01", 53, 2],
    ["2024-05-02", "2025-02", 54, 1],
  ] as const;
  const keys = {
    latestA: `${p}latest:PR.A`,
    latestB: `${p}latest:PR.B`,
    bar: `${p}bar:1m:PR.A`,
    curve: `${p}curve:PRC.X`,
    orphan: `${p}latest:PR.ZZ`,
  };
  const cleanValues: Record<string, Record<string, unknown>> = {
    [keys.latestA]: {
      instrument_id: "PR.A",
      price: 11,
      size: 2,
      event_time_ms: base + 61_000,
      event_id: "x3",
      version: 3,
    },
    [keys.latestB]: {
      instrument_id: "PR.B",
      price: -3.5,
      size: 7,
      event_time_ms: base + 5000,
      event_id: "y1",
      version: 7,
    },
    [keys.bar]: { ...bars.find((b) => b.start_ms === base + MINUTE)!, final: true, version: 1 },
    [keys.curve]: {
      curve_id: "PRC.X",
      as_of: "2024-05-02",
      points: [
        { tenor: "2025-01", price: 53, event_time_ms: base + 2 },
        { tenor: "2025-02", price: 54, event_time_ms: base + 1 },
        { tenor: "2025-Q1", price: 60, event_time_ms: base + 1 },
      ],
      version: 5,
    },
  };
  try {
    await insertRows(ch, `${silver}.ticks`, ticks.map(tickRow));
    await insertRows(ch, `${gold}.bars`, bars.map((b) => goldBarRow(b, 1)));
    await insertRows(
      ch,
      `${gold}.curves`,
      curveRows.map(([asOf, tenor, price, version]) => ({
        curve_id: "PRC.X",
        as_of: asOf,
        tenor,
        price,
        version,
        event_time: dateTime(base),
        event_time_ms: base + version,
        event_id: `${asOf}-${tenor}-${version}`,
      })),
    );
    for (const [key, value] of Object.entries(cleanValues)) {
      await redis.set(key, JSON.stringify(value));
    }

    await t.step("clean data: exit 0 in a dry run", async () => {
      const run = await runTool(env, "projection_reconcile.ts", ["--dry-run", "--json"]);
      expectCode(run, 0);
      assert.equal(run.json.summary.differences, 0);
      assert.deepEqual(run.json.summary.checked, { latest: 2, bar: 1, curve: 1 });
    });

    await t.step("a Redis value ahead of ClickHouse is reported, not counted", async () => {
      await redis.set(
        keys.latestA,
        JSON.stringify({ ...cleanValues[keys.latestA], event_time_ms: base + HOUR, price: 1 }),
      );
      const run = await runTool(env, "projection_reconcile.ts", ["--dry-run", "--json"]);
      expectCode(run, 0);
      assert.equal(run.json.summary.ahead, 1);
      await redis.set(keys.latestA, JSON.stringify(cleanValues[keys.latestA]));
    });

    // Plant: a wrong latest price, a missing bar, a curve lacking a tenor, an orphan key.
    await redis.set(keys.latestB, JSON.stringify({ ...cleanValues[keys.latestB], price: 99 }));
    await redis.del(keys.bar);
    const curve = cleanValues[keys.curve]!;
    await redis.set(
      keys.curve,
      JSON.stringify({ ...curve, points: (curve.points as unknown[]).slice(0, 2) }),
    );
    await redis.set(keys.orphan, JSON.stringify({ ...cleanValues[keys.latestB], version: 1 }));
    const plantedSnapshot = await redis.mget(...Object.values(keys));

    await t.step("dry run: exit 1, each planted difference listed, nothing written", async () => {
      const run = await runTool(env, "projection_reconcile.ts", ["--dry-run", "--json"]);
      expectCode(run, 1);
      const got = run.json.findings.map((f: Record<string, unknown>) => [f.problem, f.key]);
      assert.deepEqual(got, [
        ["missing_in_redis", keys.bar],
        ["different", keys.curve],
        ["different", keys.latestB],
        ["orphan_in_redis", keys.orphan],
      ]);
      const byKey = new Map(
        run.json.findings.map((f: { key: string }) => [f.key, f]),
      ) as Map<string, { differences: unknown[] }>;
      assert.deepEqual(byKey.get(keys.latestB)!.differences, [
        { field: "price", expected: -3.5, actual: 99 },
      ]);
      assert.deepEqual(byKey.get(keys.curve)!.differences, [
        {
          field: "points[2025-Q1]",
          expected: { tenor: "2025-Q1", price: 60, event_time_ms: base + 1 },
          actual: null,
        },
      ]);
      assert.deepEqual(await redis.mget(...Object.values(keys)), plantedSnapshot);
      const kindOnly = await runTool(env, "projection_reconcile.ts", [
        "--dry-run",
        "--kind",
        "bar",
        "--json",
      ]);
      expectCode(kindOnly, 1);
      assert.equal(kindOnly.json.findings.length, 1);
    });

    await t.step(
      "repair: Redis fixed with monotonic versions, orphan deleted, audited",
      async () => {
        const run = await runTool(env, "projection_reconcile.ts", ["--delete-orphans", "--json"]);
        expectCode(run, 0);
        assert.equal(run.json.summary.repaired, 4);
        const read = async (key: string) => JSON.parse((await redis.get(key))!);
        assert.deepEqual(await read(keys.latestB), { ...cleanValues[keys.latestB], version: 8 });
        assert.deepEqual(await read(keys.bar), { ...cleanValues[keys.bar], version: 2 });
        assert.deepEqual(await read(keys.curve), { ...curve, version: 6 });
        assert.deepEqual(await read(keys.latestA), cleanValues[keys.latestA]);
        assert.equal(await redis.exists(keys.orphan), 0);
        const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
        try {
          const rows = await sql<{ target: { key: string }; outcome: string }[]>`
          SELECT target, outcome FROM audit_log WHERE action = 'projection.repair'
          ORDER BY target->>'key'`;
          assert.deepEqual(
            rows.map((r) => [r.target.key, r.outcome]),
            [keys.bar, keys.curve, keys.latestB, keys.orphan].sort().map((k) => [k, "ok"]),
          );
        } finally {
          await sql.end();
        }
        const again = await runTool(env, "projection_reconcile.ts", ["--dry-run"]);
        expectCode(again, 0);
        assert.match(again.stdout, /0 differences/);
      },
    );

    await t.step("an orphan is left alone without --delete-orphans: exit 1", async () => {
      await redis.set(keys.orphan, "{}");
      const run = await runTool(env, "projection_reconcile.ts", ["--json"]);
      expectCode(run, 1);
      assert.equal(run.json.summary.unrepaired, 1);
      assert.equal(await redis.get(keys.orphan), "{}");
      const bad = await runTool(env, "projection_reconcile.ts", ["--kind", "bars"]);
      expectCode(bad, 2);
      assert.match(bad.stderr, /--kind must be one of latest, bar, curve/);
    });
  } finally {
    const leftover: string[] = [];
    let cursor = "0";
    do {
      const [next, batch] = await redis.scan(cursor, "MATCH", `${p}*`, "COUNT", 1000);
      cursor = next;
      leftover.push(...batch);
    } while (cursor !== "0");
    if (leftover.length > 0) await redis.del(...leftover);
    await closeRedis(redis);
    await ch.close();
    await env.cleanup();
  }
});

Deno.test("dq passes on clean data and finds a stale instrument, a price spike, a missing tenor and a zero size", async (t) => {
  const env = await freshEnv();
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  const silver = env.config.DATA_PROC_CLICKHOUSE_SILVER_DB;
  const now = Date.now();
  const curvePoint = (asOf: string, tenor: string, price: number) => ({
    event_id: `${asOf}-${tenor}`,
    curve_id: "DQC.X",
    as_of: asOf,
    tenor,
    price,
    event_time_ms: now - HOUR,
    event_time: dateTime(now - HOUR),
    source: "test",
    curve: "X",
    commodity: "power",
    region: "de",
    currency: "EUR",
    unit: "MWh",
    ingest_time_ms: now - HOUR,
  });
  try {
    const steady: Tick[] = Array.from({ length: 40 }, (_, i) => ({
      event_id: `a${String(i).padStart(2, "0")}`,
      instrument_id: "DQ.A",
      event_time_ms: now - 10 * MINUTE + i * 1000,
      price: 100 + (i % 5) * 0.1,
      size: 1,
    }));
    await insertRows(ch, `${silver}.ticks`, steady.map(tickRow));
    await insertRows(ch, `${silver}.curve_points`, [
      curvePoint("2024-05-01", "2025-01", 50),
      curvePoint("2024-05-01", "2025-02", 51),
      curvePoint("2024-05-01", "2025-Q1", 52),
      curvePoint("2024-05-02", "2025-01", 50),
      curvePoint("2024-05-02", "2025-02", 51),
      curvePoint("2024-05-02", "2025-Q1", 52),
    ]);

    await t.step("clean data: exit 0", async () => {
      const run = await runTool(env, "dq.ts", ["--mode", "immediate", "--json"]);
      expectCode(run, 0);
      assert.equal(run.json.summary.findings, 0);
      const text = await runTool(env, "dq.ts", ["--mode", "immediate", "--expected-tenors", "3"]);
      expectCode(text, 0);
      assert.match(text.stdout, /0 findings/);
    });

    await insertRows(ch, `${silver}.ticks`, [
      tickRow({
        event_id: "s1",
        instrument_id: "DQ.S",
        event_time_ms: now - 2 * HOUR,
        price: 5,
        size: 1,
      }),
      tickRow({
        event_id: "spike",
        instrument_id: "DQ.A",
        event_time_ms: now - MINUTE,
        price: 1000,
        size: 1,
      }),
      tickRow({
        event_id: "zero",
        instrument_id: "DQ.N",
        event_time_ms: now - MINUTE,
        price: 7,
        size: 0,
      }),
    ]);
    await insertRows(ch, `${silver}.curve_points`, [
      curvePoint("2024-05-03", "2025-01", 50),
      curvePoint("2024-05-03", "2025-02", 51),
    ]);

    await t.step("planted problems: exit 1 with each finding", async () => {
      const run = await runTool(env, "dq.ts", [
        "--mode",
        "immediate",
        "--stale-after",
        "15m",
        "--spike-sigma",
        "6",
        "--json",
      ]);
      expectCode(run, 1);
      const findings = run.json.findings as Record<string, unknown>[];
      assert.deepEqual(findings.map((f) => f.check), [
        "stale",
        "spike",
        "missing_tenors",
        "non_positive_size",
      ]);
      assert.equal(findings[0]!.instrument_id, "DQ.S");
      assert.equal(findings[1]!.event_id, "spike");
      assert.equal(findings[1]!.samples, 41);
      assert.ok((findings[1]!.sigmas as number) > 6);
      assert.deepEqual(
        [
          findings[2]!.curve_id,
          findings[2]!.as_of,
          findings[2]!.previous_as_of,
          findings[2]!.missing,
        ],
        ["DQC.X", "2024-05-03", "2024-05-02", ["2025-Q1"]],
      );
      assert.deepEqual(
        [findings[3]!.instrument_id, findings[3]!.count, findings[3]!.min_size],
        ["DQ.N", 1, 0],
      );
    });

    await t.step("thresholds and checks are options", async () => {
      const lenient = await runTool(env, "dq.ts", [
        "--mode",
        "immediate",
        "--checks",
        "stale,spike",
        "--stale-after",
        "3h",
        "--spike-min-samples",
        "100",
        "--json",
      ]);
      expectCode(lenient, 0);
      const tenors = await runTool(env, "dq.ts", [
        "--mode",
        "immediate",
        "--checks",
        "tenors",
        "--no-tenor-gap-check",
        "--expected-tenors",
        "3",
        "--json",
      ]);
      expectCode(tenors, 1);
      assert.deepEqual(tenors.json.findings, [
        { check: "too_few_tenors", curve_id: "DQC.X", as_of: "2024-05-03", tenors: 2, expected: 3 },
      ]);
      const text = await runTool(env, "dq.ts", ["--mode", "immediate"]);
      expectCode(text, 1);
      assert.match(text.stdout, /spike\s+DQ\.A spike/);
      assert.match(text.stdout, /4 findings/);
    });

    await t.step("bad arguments: exit 2 with a clear message", async () => {
      for (
        const args of [
          [],
          ["--mode", "later"],
          ["--mode", "immediate", "--spike-sigma", "x"],
          ["--mode", "immediate", "--interval", "1m"],
          ["--mode", "immediate", "--checks", "everything"],
        ]
      ) {
        const run = await runTool(env, "dq.ts", args);
        expectCode(run, 2);
        assert.match(run.stderr, /dq: .+/);
      }
    });
  } finally {
    await ch.close();
    await env.cleanup();
  }
});
