/** `deno task migrate`: applies PostgreSQL and ClickHouse migrations, then exits. */
import { loadConfigFromEnv } from "../config/config.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { migrateClickHouse, migratePostgres } from "../stores/migrate.ts";
import { createPostgres } from "../stores/postgres.ts";
import { parseFlags } from "./cli_args.ts";
import { EXIT_CLEAN, runCli } from "./cli_run.ts";

const TOOL = "migrate";

export const HELP = `Usage: deno task migrate [--help]

Applies the PostgreSQL and ClickHouse migrations not yet recorded (idempotent), for the
stores named by DATA_PROC_POSTGRES_DSN and DATA_PROC_CLICKHOUSE_URL, prints what it
applied and exits. The node applies the same migrations at start.

Options:
  --help    this text (nothing is applied)

Exit codes: 0 done (or already up to date), 2 bad arguments or configuration,
3 a store failed (run again once it answers).`;

async function main(args: string[]): Promise<number> {
  // Arguments first: `--help` (or a typo) must never touch a store.
  const flags = parseFlags(args, { help: { type: "boolean" } });
  if (flags["help"]) {
    console.log(HELP);
    return EXIT_CLEAN;
  }
  const config = loadConfigFromEnv();
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
    return EXIT_CLEAN;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
    await ch.close().catch(() => {});
  }
}

if (import.meta.main) Deno.exit(await runCli(TOOL, main, Deno.args));
