/** Store modules against the real Redis, PostgreSQL and ClickHouse; migrations. */
import assert from "node:assert/strict";
import { createClickHouse, insertRows, queryRows } from "../stores/clickhouse.ts";
import { migrateClickHouse, migratePostgres } from "../stores/migrate.ts";
import { createPostgres } from "../stores/postgres.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { recordAudit } from "../stores/audit_log.ts";
import { freshEnv } from "./support.ts";

Deno.test("redis round trip through the store module", async () => {
  const env = await freshEnv();
  const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
  try {
    const key = `${env.config.DATA_PROC_REDIS_PREFIX}roundtrip`;
    await redis.set(key, "value", "PX", 10_000);
    assert.equal(await redis.get(key), "value");
  } finally {
    await closeRedis(redis);
    await env.cleanup();
  }
});

Deno.test("postgres reference tables and audit_log round trip", async () => {
  const env = await freshEnv();
  const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  try {
    await sql`INSERT INTO instruments (instrument_id, commodity, region, currency, unit)
              VALUES ('EUA-DEC26', 'carbon', 'EU', 'EUR', 'tCO2e')`;
    await sql`INSERT INTO instrument_map (source, symbol, instrument_id, price_multiplier)
              VALUES ('ice', 'EUA Z6', 'EUA-DEC26', 0.01)`;
    const rows = await sql`SELECT m.instrument_id, m.price_multiplier::text AS m, i.currency
                           FROM instrument_map m JOIN instruments i USING (instrument_id)`;
    assert.deepEqual([...rows], [{ instrument_id: "EUA-DEC26", m: "0.01", currency: "EUR" }]);
    const id = await recordAudit(sql, {
      actor: "test",
      action: "actor.reset",
      target: { kind: "instrument", key: "EUA-DEC26" },
      outcome: "ok",
    });
    const audit = await sql`SELECT actor, action, outcome, target FROM audit_log WHERE id = ${id}`;
    assert.equal(audit[0]!.action, "actor.reset");
    assert.deepEqual(audit[0]!.target, { kind: "instrument", key: "EUA-DEC26" });
  } finally {
    await sql.end();
    await env.cleanup();
  }
});

Deno.test("clickhouse silver and gold tables round trip; FINAL keeps one row per key", async () => {
  const env = await freshEnv();
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  const gold = env.config.DATA_PROC_CLICKHOUSE_GOLD_DB;
  try {
    const bar = {
      instrument_id: "I1",
      resolution: "1m",
      start: 1_700_000_000,
      start_ms: 1_700_000_000_000,
      end_ms: 1_700_000_060_000,
      open: 1,
      high: 2,
      low: -1,
      close: 1.5,
      volume: 3,
      vwap: 1.2,
      count: 3,
      final: 0,
      version: 6,
      event_time: 1_700_000_010,
    };
    await insertRows(ch, `${gold}.bars`, [bar]);
    await insertRows(ch, `${gold}.bars`, [{ ...bar, count: 4, version: 9, final: 1 }]);
    const rows = await queryRows<{ count: string; version: string; final: number }>(
      ch,
      `SELECT count, version, final FROM ${gold}.bars FINAL`,
    );
    assert.deepEqual(rows, [{ count: "4", version: "9", final: 1 }]);
  } finally {
    await ch.close();
    await env.cleanup();
  }
});

Deno.test("migrations run twice leave the schema unchanged and match CONTRACT.md", async () => {
  const env = await freshEnv();
  const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  const dbs = {
    silver: env.config.DATA_PROC_CLICKHOUSE_SILVER_DB,
    gold: env.config.DATA_PROC_CLICKHOUSE_GOLD_DB,
  };
  const schema = async () => ({
    pg: await sql`SELECT table_name, column_name, data_type FROM information_schema.columns
                  WHERE table_schema = 'public' ORDER BY table_name, column_name`,
    ch: await queryRows<{ database: string; table: string; name: string; type: string }>(
      ch,
      `SELECT database, table, name, type FROM system.columns
       WHERE database IN ('${dbs.silver}', '${dbs.gold}') ORDER BY database, table, name`,
    ),
  });
  try {
    const before = await schema(); // freshEnv already migrated once
    assert.deepEqual(await migratePostgres(sql), []);
    assert.deepEqual(await migrateClickHouse(ch, dbs), []);
    const after = await schema();
    assert.deepEqual(after, before);
    const pgColumns = (table: string) =>
      after.pg.filter((r) => r.table_name === table).map((r) => r.column_name);
    for (
      const col of ["source", "symbol", "instrument_id", "price_multiplier"]
    ) assert.ok(pgColumns("instrument_map").includes(col), `instrument_map.${col}`);
    for (const col of ["instrument_id", "commodity", "region", "currency", "unit"]) {
      assert.ok(pgColumns("instruments").includes(col), `instruments.${col}`);
    }
    for (const col of ["source", "curve", "curve_id"]) {
      assert.ok(pgColumns("curve_map").includes(col));
    }
    for (const col of ["curve_id", "commodity", "region", "currency", "unit"]) {
      assert.ok(pgColumns("curves").includes(col));
    }
    const type = (table: string, name: string) =>
      after.ch.find((r) => r.table === table && r.name === name)?.type;
    const bars: Record<string, string> = {
      instrument_id: "String",
      resolution: "String",
      start: "DateTime('UTC')",
      start_ms: "Int64",
      open: "Float64",
      high: "Float64",
      low: "Float64",
      close: "Float64",
      volume: "Float64",
      vwap: "Float64",
      count: "UInt64",
      final: "UInt8",
      version: "UInt64",
      event_time: "DateTime('UTC')",
    };
    for (const [name, t] of Object.entries(bars)) {
      assert.equal(type("bars", name), t, `bars.${name}`);
    }
    for (
      const [name, t] of Object.entries({
        curve_id: "String",
        as_of: "Date",
        tenor: "String",
        price: "Float64",
        version: "UInt64",
        event_time: "DateTime('UTC')",
      })
    ) assert.equal(type("curves", name), t, `curves.${name}`);
    for (
      const [name, t] of Object.entries({
        event_id: "String",
        instrument_id: "String",
        event_time_ms: "Int64",
        price: "Float64",
        size: "Float64",
        source: "String",
      })
    ) assert.equal(type("ticks", name), t, `ticks.${name}`);
    assert.equal(type("curve_points", "as_of"), "Date");
  } finally {
    await sql.end();
    await ch.close();
    await env.cleanup();
  }
});
