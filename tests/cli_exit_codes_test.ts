/**
 * Every `deno task` tool, run as a user runs it (the task, with its permission flags):
 * `--help` prints usage and touches nothing, and one exit-code scheme holds for all of them
 * (0 clean, 1 problems found, 2 bad arguments or configuration, 3 a store failed).
 */
import assert from "node:assert/strict";
import { createClickHouse, queryRows } from "../stores/clickhouse.ts";
import { createKafka, ensureTopicNames, topicNames } from "../stores/kafka.ts";
import { uniqueId } from "./support.ts";

const REPO = new URL("../", import.meta.url).pathname;

/** The real local stores (the shell's values, else the local defaults). */
const BASE_ENV = {
  DATA_PROC_KAFKA_BOOTSTRAP: Deno.env.get("DATA_PROC_KAFKA_BOOTSTRAP") ?? "127.0.0.1:9092",
  DATA_PROC_CLICKHOUSE_URL: Deno.env.get("DATA_PROC_CLICKHOUSE_URL") ?? "http://127.0.0.1:8123",
  DATA_PROC_REDIS_URL: Deno.env.get("DATA_PROC_REDIS_URL") ?? "redis://127.0.0.1:6379/0",
  DATA_PROC_POSTGRES_DSN: Deno.env.get("DATA_PROC_POSTGRES_DSN") ??
    "postgres://postgres@127.0.0.1:5432/postgres",
};

/** Each tool's task name; all of them take `--help`. */
const TOOLS = [
  "migrate",
  "generate",
  "dlq:reprocess",
  "reconcile",
  "projection:reconcile",
  "dq",
  "bench",
] as const;

/** Stores nobody listens on: a tool that tried to act would fail (exit 3), not exit 0. */
const UNREACHABLE = {
  DATA_PROC_KAFKA_BOOTSTRAP: "127.0.0.1:1",
  DATA_PROC_CLICKHOUSE_URL: "http://127.0.0.1:1",
  DATA_PROC_POSTGRES_DSN: "postgres://postgres@127.0.0.1:1/postgres",
  DATA_PROC_REDIS_URL: "redis://127.0.0.1:1/0",
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function runTask(task: string, args: string[], env: Record<string, string>): Promise<Run> {
  const deadline = AbortSignal.timeout(90_000);
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "-q", task, ...args],
    cwd: REPO,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "", HOME: Deno.env.get("HOME") ?? "/tmp", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: deadline,
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

function expectCode(run: Run, code: number, what: string): void {
  assert.equal(run.code, code, `${what}: exit ${run.code}\n${run.stdout}\n${run.stderr}`);
}

Deno.test("every tool's --help prints its usage and exits 0 without touching a store", async () => {
  for (const tool of TOOLS) {
    const run = await runTask(tool, ["--help"], { ...BASE_ENV, ...UNREACHABLE, NO_COLOR: "1" });
    expectCode(run, 0, `${tool} --help`);
    assert.match(run.stdout, new RegExp(`deno task ${tool}`), `${tool} --help shows its usage`);
  }
});

Deno.test("migrate --help applies nothing; migrate without it applies the migrations", async () => {
  const id = uniqueId();
  const env = {
    ...BASE_ENV,
    DATA_PROC_CLICKHOUSE_SILVER_DB: `silver_help_${id}`,
    DATA_PROC_CLICKHOUSE_GOLD_DB: `gold_help_${id}`,
  };
  const ch = createClickHouse(BASE_ENV.DATA_PROC_CLICKHOUSE_URL);
  const exists = async () =>
    (await queryRows<{ name: string }>(
      ch,
      `SELECT name FROM system.databases WHERE name = '${env.DATA_PROC_CLICKHOUSE_SILVER_DB}'`,
    )).length > 0;
  try {
    expectCode(await runTask("migrate", ["--help"], env), 0, "migrate --help");
    assert.equal(await exists(), false, "migrate --help created a database");
    expectCode(await runTask("migrate", [], env), 0, "migrate");
    assert.equal(await exists(), true, "migrate did not create the database");
  } finally {
    for (const db of [env.DATA_PROC_CLICKHOUSE_SILVER_DB, env.DATA_PROC_CLICKHOUSE_GOLD_DB]) {
      await ch.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    }
    await ch.close();
  }
});

Deno.test("an unknown flag is exit code 2 for every tool", async () => {
  for (const tool of TOOLS) {
    const run = await runTask(tool, ["--no-such-flag"], { ...BASE_ENV, ...UNREACHABLE });
    expectCode(run, 2, `${tool} --no-such-flag`);
  }
});

Deno.test("a bad configuration is exit code 2", async () => {
  const env = { ...BASE_ENV, ...UNREACHABLE, DATA_PROC_HTTP_PORT: "not-a-port" };
  const runs: [string, string[]][] = [
    ["migrate", []],
    ["generate", ["--count", "1"]],
    ["dlq:reprocess", ["--partition", "0", "--start-offset", "0", "--end-offset", "0"]],
    ["reconcile", ["--window", "1h"]],
    ["projection:reconcile", ["--dry-run"]],
    ["dq", ["--mode", "immediate"]],
  ];
  for (const [tool, args] of runs) {
    const run = await runTask(tool, args, env);
    expectCode(run, 2, `${tool} with a bad DATA_PROC_HTTP_PORT`);
    assert.match(run.stderr, /DATA_PROC_HTTP_PORT/, `${tool} names the bad variable`);
  }
});

Deno.test("a store that does not answer is exit code 3", async () => {
  const noPostgres = { ...BASE_ENV, DATA_PROC_POSTGRES_DSN: UNREACHABLE.DATA_PROC_POSTGRES_DSN };
  const noClickHouse = {
    ...BASE_ENV,
    DATA_PROC_CLICKHOUSE_URL: UNREACHABLE.DATA_PROC_CLICKHOUSE_URL,
  };
  expectCode(await runTask("migrate", [], noPostgres), 3, "migrate without PostgreSQL");
  expectCode(
    await runTask("generate", ["--seed-refdata", "--count", "1"], noPostgres),
    3,
    "generate --seed-refdata without PostgreSQL",
  );
  expectCode(
    await runTask("reconcile", ["--window", "1h"], noClickHouse),
    3,
    "reconcile without ClickHouse",
  );

  // dlq:reprocess reads a real DLQ partition holding one record, then cannot reach PostgreSQL
  // (reference data and the audit row): README says exit 3, "nothing lost; run again".
  const prefix = `cli${uniqueId()}.`;
  const dlq = topicNames(prefix).dlq;
  const kafka = createKafka(BASE_ENV.DATA_PROC_KAFKA_BOOTSTRAP, "cli-exit-codes-test");
  const admin = kafka.admin();
  const producer = kafka.producer();
  await admin.connect();
  await producer.connect();
  try {
    await ensureTopicNames(admin, [dlq], 1);
    await producer.send({ topic: dlq, messages: [{ value: "{}" }] });
    const run = await runTask(
      "dlq:reprocess",
      ["--partition", "0", "--start-offset", "0", "--end-offset", "0"],
      { ...noPostgres, DATA_PROC_TOPIC_PREFIX: prefix },
    );
    expectCode(run, 3, "dlq:reprocess without PostgreSQL");
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [dlq] }).catch(() => {});
    await admin.disconnect();
  }
});
