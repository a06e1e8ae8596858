/**
 * Helpers for integration tests: fresh, isolated names for every test (topics, group,
 * ClickHouse databases, Redis prefix, PostgreSQL database) and polling with a deadline.
 */
import { type Config, loadConfig } from "../config/config.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka } from "../stores/kafka.ts";
import { createPostgres } from "../stores/postgres.ts";
import { migrateClickHouse, migratePostgres } from "../stores/migrate.ts";
import { sleep } from "../timing/sleep.ts";

export const BASE_ENV = {
  DATA_PROC_KAFKA_BOOTSTRAP: Deno.env.get("DATA_PROC_KAFKA_BOOTSTRAP") ?? "127.0.0.1:9092",
  DATA_PROC_CLICKHOUSE_URL: Deno.env.get("DATA_PROC_CLICKHOUSE_URL") ?? "http://127.0.0.1:8123",
  DATA_PROC_REDIS_URL: Deno.env.get("DATA_PROC_REDIS_URL") ?? "redis://127.0.0.1:6379/0",
  DATA_PROC_POSTGRES_DSN: Deno.env.get("DATA_PROC_POSTGRES_DSN") ??
    "postgres://postgres@127.0.0.1:5432/postgres",
};

/** A short random id for names that must not collide between tests or runs. */
export function uniqueId(): string {
  return `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

export interface TestEnv {
  id: string;
  env: Record<string, string>;
  config: Config;
  /** Drops the PostgreSQL database and the ClickHouse databases made for the test. */
  cleanup(): Promise<void>;
}

/**
 * Makes a fresh environment: its own topic prefix, consumer group, Redis prefix,
 * ClickHouse databases and PostgreSQL database, migrated. `overrides` are DATA_PROC_* values.
 */
export async function freshEnv(overrides: Record<string, string> = {}): Promise<TestEnv> {
  const id = uniqueId();
  const pgDb = `dp_test_${id}`;
  const admin = createPostgres(BASE_ENV.DATA_PROC_POSTGRES_DSN, { max: 1 });
  try {
    await admin.unsafe(`CREATE DATABASE ${pgDb}`);
  } finally {
    await admin.end();
  }
  const dsn = new URL(BASE_ENV.DATA_PROC_POSTGRES_DSN);
  dsn.pathname = `/${pgDb}`;
  const env: Record<string, string> = {
    ...BASE_ENV,
    DATA_PROC_ENV: "test",
    DATA_PROC_POSTGRES_DSN: dsn.toString(),
    DATA_PROC_TOPIC_PREFIX: `t${id}.`,
    DATA_PROC_GROUP_ID: `g${id}`,
    DATA_PROC_REDIS_PREFIX: `t${id}:`,
    DATA_PROC_CLICKHOUSE_SILVER_DB: `silver_${id}`,
    DATA_PROC_CLICKHOUSE_GOLD_DB: `gold_${id}`,
    DATA_PROC_HTTP_PORT: "0",
    DATA_PROC_NORMALIZED_PARTITIONS: "3",
    DATA_PROC_PROJECTION_REFRESH_INTERVAL: "0.2",
    DATA_PROC_REFDATA_REFRESH_MS: "200",
    DATA_PROC_ADMIN_TOKEN: "test-admin-token",
    // Fixtures carry fixed event times (2027) ahead of today's record timestamps; the
    // future-skew guard is tested with its own value.
    DATA_PROC_MAX_FUTURE_SKEW_MS: String(10 * 365 * 86_400_000),
    ...overrides,
  };
  const config = loadConfig(env);
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  const ch = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  try {
    await migratePostgres(sql);
    await migrateClickHouse(ch, {
      silver: config.DATA_PROC_CLICKHOUSE_SILVER_DB,
      gold: config.DATA_PROC_CLICKHOUSE_GOLD_DB,
    });
  } finally {
    await sql.end();
    await ch.close();
  }
  return {
    id,
    env,
    config,
    cleanup: async () => {
      await deleteTopics(config.DATA_PROC_KAFKA_BOOTSTRAP, config.DATA_PROC_TOPIC_PREFIX);
      const ch2 = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
      const pg = createPostgres(BASE_ENV.DATA_PROC_POSTGRES_DSN, { max: 1 });
      try {
        await ch2.command({
          query: `DROP DATABASE IF EXISTS ${config.DATA_PROC_CLICKHOUSE_SILVER_DB}`,
        });
        await ch2.command({
          query: `DROP DATABASE IF EXISTS ${config.DATA_PROC_CLICKHOUSE_GOLD_DB}`,
        });
        await pg.unsafe(`DROP DATABASE IF EXISTS ${pgDb} WITH (FORCE)`);
      } finally {
        await ch2.close();
        await pg.end();
      }
    },
  };
}

/** Deletes the topics a test made (its prefix), so runs do not pile topics up in the broker. */
async function deleteTopics(bootstrap: string, prefix: string): Promise<void> {
  const admin = createKafka(bootstrap, "test-cleanup").admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 10_000 });
  } catch {
    // best effort: a test's result does not depend on its cleanup
  } finally {
    await admin.disconnect();
  }
}

/**
 * Polls `probe` until it returns a value other than undefined, or throws when the deadline
 * passes with the last value seen in the message.
 */
export async function pollUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + (options.timeoutMs ?? 60_000);
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    await sleep(options.intervalMs ?? 200);
  }
  throw new Error(`Timed out waiting for ${what}${lastError ? `: ${lastError}` : ""}`);
}
