/**
 * Applies the PostgreSQL and ClickHouse migrations in `stores/migrations/`, in name order,
 * each once, and records them. Safe to run any number of times.
 */
import type { ClickHouseClient } from "./clickhouse.ts";
import type { Sql } from "./postgres.ts";
import { queryRows } from "./clickhouse.ts";
import { sqlIdentifier, sqlString } from "./sql.ts";

const MIGRATIONS_DIR = new URL("./migrations/", import.meta.url);

export interface ClickHouseDatabases {
  silver: string;
  gold: string;
}

async function migrationFiles(store: "postgres" | "clickhouse") {
  const dir = new URL(`${store}/`, MIGRATIONS_DIR);
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".sql")) names.push(entry.name);
  }
  names.sort();
  return await Promise.all(
    names.map(async (name) => ({ name, text: await Deno.readTextFile(new URL(name, dir)) })),
  );
}

/** Splits a SQL file into statements on `;` at line ends. */
function statements(text: string): string[] {
  return text.split(/;\s*$/m).map((s) => s.replace(/^\s*--.*$/gm, "").trim()).filter((s) =>
    s.length > 0
  );
}

/** Applies pending PostgreSQL migrations; returns the names applied now. */
export async function migratePostgres(sql: Sql): Promise<string[]> {
  await sql`CREATE TABLE IF NOT EXISTS schema_migrations (
    name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`;
  const applied = new Set(
    (await sql<{ name: string }[]>`SELECT name FROM schema_migrations`).map((r) => r.name),
  );
  const done: string[] = [];
  for (const file of await migrationFiles("postgres")) {
    if (applied.has(file.name)) continue;
    await sql.begin(async (tx) => {
      // Serialise concurrent starters: the advisory lock is released at commit.
      await tx`SELECT pg_advisory_xact_lock(254254)`;
      const again = await tx`SELECT 1 FROM schema_migrations WHERE name = ${file.name}`;
      if (again.length > 0) return;
      await tx.unsafe(file.text);
      await tx`INSERT INTO schema_migrations (name) VALUES (${file.name})`;
      done.push(file.name);
    });
  }
  return done;
}

/** Applies pending ClickHouse migrations; every statement is idempotent (IF NOT EXISTS). */
export async function migrateClickHouse(
  client: ClickHouseClient,
  dbs: ClickHouseDatabases,
): Promise<string[]> {
  const silver = sqlIdentifier(dbs.silver);
  const gold = sqlIdentifier(dbs.gold);
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${gold}` });
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${gold}.schema_migrations
      (name String, applied_at DateTime('UTC')) ENGINE = MergeTree() ORDER BY name`,
  });
  const applied = new Set(
    (await queryRows<{ name: string }>(client, `SELECT name FROM ${gold}.schema_migrations`))
      .map((r) => r.name),
  );
  const done: string[] = [];
  for (const file of await migrationFiles("clickhouse")) {
    if (applied.has(file.name)) continue;
    const text = file.text.replaceAll("{silver}", silver).replaceAll("{gold}", gold);
    for (const statement of statements(text)) await client.command({ query: statement });
    await client.command({
      query: `INSERT INTO ${gold}.schema_migrations (name, applied_at) VALUES (${
        sqlString(file.name)
      }, now())`,
    });
    done.push(file.name);
  }
  return done;
}
