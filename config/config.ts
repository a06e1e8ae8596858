/**
 * The node's configuration: every `DATA_PROC_*` variable, parsed and validated once at
 * start. A bad value stops the node with a message naming each bad variable.
 */
import { z } from "zod";

const integer = (min: number) => z.coerce.number().int().min(min);
const boolean = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");
const url = (protocols: string[]) =>
  z.string().refine((v) => {
    try {
      return protocols.includes(new URL(v).protocol);
    } catch {
      return false;
    }
  }, { message: `must be a URL with scheme ${protocols.join(" or ")}` });

/** Parses a window size like `30s`, `1m`, `1h`, `1d` to milliseconds. */
export function parseWindow(text: string): number | undefined {
  const match = /^(\d+)(s|m|h|d)$/.exec(text.trim());
  if (!match) return undefined;
  const unitMs = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "s"];
  const ms = Number(match[1]) * unitMs;
  return ms > 0 ? ms : undefined;
}

const barWindows = z.string().transform((text, ctx) => {
  const parts = text.split(",").map((p) => p.trim()).filter((p) => p.length > 0);
  const windows = parts.map((name) => ({ name, ms: parseWindow(name) }));
  const bad = windows.filter((w) => w.ms === undefined).map((w) => w.name);
  if (parts.length === 0 || bad.length > 0) {
    ctx.addIssue({
      code: "custom",
      message: `must be a comma-separated list of sizes like 1m,1h (bad: ${
        bad.join(",") || "empty"
      })`,
    });
    return z.NEVER;
  }
  return windows.map((w) => ({ name: w.name, ms: w.ms as number }));
});

const schema = z.object({
  DATA_PROC_ENV: z.enum(["local", "test", "dev", "staging", "production"]).default("local"),
  DATA_PROC_KAFKA_BOOTSTRAP: z.string().regex(
    /^[^,:\s]+:\d+(,[^,:\s]+:\d+)*$/,
    "must be host:port[,host:port...]",
  ).default("127.0.0.1:9092"),
  DATA_PROC_CLICKHOUSE_URL: url(["http:", "https:"]).default("http://127.0.0.1:8123"),
  DATA_PROC_POSTGRES_DSN: url(["postgres:", "postgresql:"]).default(
    "postgres://postgres@127.0.0.1:5432/postgres",
  ),
  DATA_PROC_REDIS_URL: url(["redis:", "rediss:"]).default("redis://127.0.0.1:6379/0"),
  DATA_PROC_TRACE_ENABLED: boolean.default(false),
  DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE: integer(1).max(100_000).default(1000),
  DATA_PROC_PROJECTION_REFRESH_INTERVAL: z.coerce.number().positive().max(3600).default(1),
  DATA_PROC_HTTP_PORT: integer(0).max(65535).default(8080),
  DATA_PROC_ADMIN_TOKEN: z.string().default(""),
  DATA_PROC_BAR_WINDOWS: barWindows.default([{ name: "1m", ms: 60_000 }, {
    name: "1h",
    ms: 3_600_000,
  }]),
  DATA_PROC_ALLOWED_LATENESS_MS: integer(0).default(5000),
  DATA_PROC_IDLE_CLOSE_MS: integer(1).default(30_000),
  DATA_PROC_REFDATA_REFRESH_MS: integer(100).default(5000),
  DATA_PROC_WATERMARK_INTERVAL_MS: integer(1).default(1000),
  DATA_PROC_MAX_FUTURE_SKEW_MS: integer(0).default(300_000),
  // Extensions of CONTRACT.md (documented in README.md).
  DATA_PROC_GROUP_ID: z.string().min(1).default("254carbon-data-processing"),
  DATA_PROC_TOPIC_PREFIX: z.string().default(""),
  DATA_PROC_NORMALIZED_PARTITIONS: integer(1).max(1024).default(6),
  DATA_PROC_CLICKHOUSE_SILVER_DB: z.string().regex(/^\w+$/).default("silver"),
  DATA_PROC_CLICKHOUSE_GOLD_DB: z.string().regex(/^\w+$/).default("gold"),
  DATA_PROC_REDIS_PREFIX: z.string().default(""),
  DATA_PROC_MAX_LIVE_ACTORS: integer(1).default(20_000),
  DATA_PROC_ACTOR_IDLE_PASSIVATE_MS: integer(1).default(60_000),
  DATA_PROC_ACTOR_HISTORY: integer(0).max(1000).default(20),
  DATA_PROC_SNAPSHOT_INTERVAL_MS: integer(0).default(5000),
  // Log records a replay reads per second at most (0: as fast as it can), so a long replay
  // leaves the event loop to the live partitions.
  DATA_PROC_REPLAY_MAX_RECORDS_PER_S: integer(0).default(0),
  // GET requests a node serves per second (bursts of twice that), probes aside; 0: no limit.
  DATA_PROC_HTTP_READS_PER_S: integer(0).default(50),
  DATA_PROC_NODE_ID: z.string().default(""),
  DATA_PROC_ADVERTISED_URL: z.string().default(""),
  DATA_PROC_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  // Threads the node runs, each a member of the consumer groups on its own core: the main
  // thread (HTTP, its share of partitions) and DATA_PROC_WORKERS - 1 workers.
  DATA_PROC_WORKERS: integer(1).max(64).default(1),
  DATA_PROC_NORMALIZER_ENABLED: boolean.default(true),
  DATA_PROC_ACTORS_ENABLED: boolean.default(true),
  // How long a SIGTERM drain (flush, commit, leave the group) may take before the node exits
  // anyway: the work not committed is redone by the next owner. Kubernetes' grace is longer.
  DATA_PROC_SHUTDOWN_TIMEOUT_MS: integer(1).default(30_000),
});

export type Config = z.infer<typeof schema>;
export type BarWindow = Config["DATA_PROC_BAR_WINDOWS"][number];

/** Thrown when the environment holds invalid configuration; lists every bad variable. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Parses configuration from an environment map (empty strings count as unset). */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return `${name}=${JSON.stringify(input[name] ?? "")}: ${issue.message}`;
    });
    throw new ConfigError(problems);
  }
  return parsed.data;
}

/** Reads configuration from the process environment. */
export function loadConfigFromEnv(): Config {
  return loadConfig(Deno.env.toObject());
}
