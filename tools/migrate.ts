/** `deno task migrate`: applies PostgreSQL and ClickHouse migrations, then exits. */
import { ConfigError, loadConfigFromEnv } from "../config/config.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { migrateClickHouse, migratePostgres } from "../stores/migrate.ts";
import { createPostgres } from "../stores/postgres.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfigFromEnv();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  const ch = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  try {
    const pg = await migratePostgres(sql);
    const chDone = await migrateClickHouse(ch, {
      silver: config.DATA_PROC_CLICKHOUSE_SILVER_DB,
      gold: config.DATA_PROC_CLICKHOUSE_GOLD_DB,
    });
    console.log(`postgres: ${pg.length ? pg.join(", ") : "up to date"}`);
    console.log(`clickhouse: ${chDone.length ? chDone.join(", ") : "up to date"}`);
    return 0;
  } finally {
    await sql.end();
    await ch.close();
  }
}

if (import.meta.main) Deno.exit(await main());
