/**
 * `deno task reconcile`: recomputes bars from `silver.ticks` and compares them with
 * `gold.bars FINAL`; `--repair` asks a node to replay the mismatched instruments.
 * Run with `--help` for the options and exit codes.
 */
import { type Config, loadConfigFromEnv } from "../config/config.ts";
import { recordAudit } from "../stores/audit_log.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createPostgres } from "../stores/postgres.ts";
import {
  type BarComparisonOptions,
  type BarMismatch,
  streamBarMismatches,
} from "./bar_recompute.ts";
import { DEFAULT_RELATIVE_TOLERANCE } from "./bar_diff.ts";
import {
  type FlagSpec,
  parseDuration,
  parseFlags,
  parseNumber,
  parseTime,
  stringFlag,
  UsageError,
} from "./cli_args.ts";
import { EXIT_CLEAN, EXIT_FOUND, progress, runCli } from "./cli_run.ts";
import { replayInstrument, type ReplayOutcome } from "./replay_client.ts";
import { sleep } from "../timing/sleep.ts";

const TOOL = "reconcile";

export const HELP = `Usage: deno task reconcile [options]

Recomputes bars from silver.ticks (each event_id once, open/close ordered by
(event_time_ms, event_id), tumbling windows aligned to the UTC epoch) and compares them
with gold.bars FINAL on open, high, low, close, volume, vwap and count (floats within a
relative tolerance; version is not compared). Only bars whose whole window lies within
the period are compared.

Period:
  --window D             length of the period ending at --to (default 24h; 30s, 15m, 24h, 7d)
  --from T               period start (epoch ms or ISO-8601 with zone); overrides --window
  --to T                 period end (default: now)
  --ignore-open          skip bars that may not be final yet: the period ends at most at
                         now - DATA_PROC_ALLOWED_LATENESS_MS - DATA_PROC_IDLE_CLOSE_MS
                         (the default)
  --include-open         compare every bar up to --to, also those still open

Selection and comparison:
  --instrument-prefix P  only instruments whose id starts with P
  --resolutions LIST     bar sizes to compare (default: DATA_PROC_BAR_WINDOWS)
  --tolerance X          relative float tolerance (default ${DEFAULT_RELATIVE_TOLERANCE})
  --limit N              mismatches listed in the output (default 1000; counts are always full)

Repair:
  --repair               ask a node to replay each mismatched instrument from the period
                         start (POST /replay), wait for its job, record each repair in
                         audit_log (action reconcile.repair), then compare again
  --node-url URL         node to ask (default http://127.0.0.1:$DATA_PROC_HTTP_PORT)
  --token T              admin token (default $DATA_PROC_ADMIN_TOKEN)
  --requested-by NAME    who asks, for the audit log (default reconcile)
  --repair-timeout D     deadline per replay job (default 10m)
  --verify-timeout D     how long the comparison after repair retries (default 30s)
  --max-repairs N        refuse to repair more instruments than this (default 100)

Output:
  --json                 one JSON report on stdout instead of text
  --help                 this text

Mismatch kinds: missing_in_gold (silver has events for the bar, gold has no bar),
extra_in_gold (gold has a bar without silver events), different (fields differ).
Silver holds every normalized event, including events that arrived later than the
allowed lateness; the aggregator sent those to the DLQ as late_event, so their bars
legitimately differ from gold. Each silver bar carries arrived_after_close: the number
of its events that reached silver after the bar's end + allowed lateness (likely late
events; check the DLQ before repairing such bars).

Exit codes: 0 no mismatches (after repair: none left), 1 mismatches found (or left after
repair), 2 bad arguments or configuration, 3 failure (store unreachable, query error).
`;

const FLAGS: FlagSpec = {
  "window": { type: "string" },
  "from": { type: "string" },
  "to": { type: "string" },
  "ignore-open": { type: "boolean" },
  "include-open": { type: "boolean" },
  "instrument-prefix": { type: "string" },
  "resolutions": { type: "string" },
  "tolerance": { type: "string" },
  "limit": { type: "string" },
  "repair": { type: "boolean" },
  "node-url": { type: "string" },
  "token": { type: "string" },
  "requested-by": { type: "string" },
  "repair-timeout": { type: "string" },
  "verify-timeout": { type: "string" },
  "max-repairs": { type: "string" },
  "json": { type: "boolean" },
  "help": { type: "boolean" },
};

export interface ReconcileOptions {
  comparison: BarComparisonOptions;
  requestedToMs: number;
  limit: number;
  json: boolean;
  repair: null | {
    nodeUrl: string;
    token: string;
    requestedBy: string;
    timeoutMs: number;
    verifyTimeoutMs: number;
    maxRepairs: number;
  };
}

/** Parses and checks every option before any work starts. */
export function parseReconcileOptions(
  args: readonly string[],
  config: Config,
  nowMs: number,
): ReconcileOptions | "help" {
  const v = parseFlags(args, FLAGS);
  if (v["help"]) return "help";
  if (v["ignore-open"] && v["include-open"]) {
    throw new UsageError("--ignore-open and --include-open exclude each other");
  }
  const toFlag = stringFlag(v, "to");
  const fromFlag = stringFlag(v, "from");
  const windowFlag = stringFlag(v, "window");
  if (fromFlag !== undefined && windowFlag !== undefined) {
    throw new UsageError("give either --from or --window, not both");
  }
  const requestedToMs = toFlag !== undefined ? parseTime("to", toFlag) : nowMs;
  const fromMs = fromFlag !== undefined
    ? parseTime("from", fromFlag)
    : requestedToMs - parseDuration("window", windowFlag ?? "24h");
  const settleMs = config.DATA_PROC_ALLOWED_LATENESS_MS + config.DATA_PROC_IDLE_CLOSE_MS;
  const toMs = v["include-open"] ? requestedToMs : Math.min(requestedToMs, nowMs - settleMs);
  if (!(fromMs < toMs)) {
    throw new UsageError(
      `the period is empty: from ${new Date(fromMs).toISOString()} is not before to ${
        new Date(toMs).toISOString()
      }${v["include-open"] ? "" : " (open bars excluded; see --include-open)"}`,
    );
  }
  let windows = config.DATA_PROC_BAR_WINDOWS;
  const resolutions = stringFlag(v, "resolutions");
  if (resolutions !== undefined) {
    const names = resolutions.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
    if (names.length === 0) throw new UsageError("--resolutions needs at least one size");
    windows = names.map((name) => ({ name, ms: parseDuration("resolutions", name) }));
  }
  const prefix = stringFlag(v, "instrument-prefix");
  const tolerance = stringFlag(v, "tolerance");
  const limit = stringFlag(v, "limit");
  const comparison: BarComparisonOptions = {
    silverDb: config.DATA_PROC_CLICKHOUSE_SILVER_DB,
    goldDb: config.DATA_PROC_CLICKHOUSE_GOLD_DB,
    windows,
    fromMs,
    toMs,
    allowedLatenessMs: config.DATA_PROC_ALLOWED_LATENESS_MS,
    relativeTolerance: tolerance === undefined
      ? DEFAULT_RELATIVE_TOLERANCE
      : parseNumber("tolerance", tolerance, { min: 0, max: 1 }),
    ...(prefix ? { instrumentPrefix: prefix } : {}),
  };
  let repair: ReconcileOptions["repair"] = null;
  if (v["repair"]) {
    const token = stringFlag(v, "token") ?? config.DATA_PROC_ADMIN_TOKEN;
    if (!token) {
      throw new UsageError("--repair needs an admin token: --token or DATA_PROC_ADMIN_TOKEN");
    }
    const nodeUrl = stringFlag(v, "node-url") ??
      `http://127.0.0.1:${config.DATA_PROC_HTTP_PORT}`;
    try {
      const url = new URL(nodeUrl);
      if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error();
    } catch {
      throw new UsageError(`--node-url must be an http(s) URL, got ${JSON.stringify(nodeUrl)}`);
    }
    const maxRepairs = stringFlag(v, "max-repairs");
    const timeout = stringFlag(v, "repair-timeout");
    const verify = stringFlag(v, "verify-timeout");
    repair = {
      nodeUrl,
      token,
      requestedBy: stringFlag(v, "requested-by") ?? "reconcile",
      timeoutMs: parseDuration("repair-timeout", timeout ?? "10m"),
      verifyTimeoutMs: verify === undefined ? 30_000 : parseDuration("verify-timeout", verify),
      maxRepairs: maxRepairs === undefined
        ? 100
        : parseNumber("max-repairs", maxRepairs, { min: 1, integer: true }),
    };
  } else {
    for (const name of ["node-url", "token", "repair-timeout", "verify-timeout", "max-repairs"]) {
      if (v[name] !== undefined) throw new UsageError(`--${name} only applies with --repair`);
    }
  }
  return {
    comparison,
    requestedToMs,
    limit: limit === undefined ? 1000 : parseNumber("limit", limit, { min: 0, integer: true }),
    json: Boolean(v["json"]),
    repair,
  };
}

interface Comparison {
  mismatches: BarMismatch[];
  total: number;
  byKind: Record<BarMismatch["kind"], number>;
  /** Mismatch count per instrument. */
  instruments: Map<string, number>;
}

async function compare(
  ch: ReturnType<typeof createClickHouse>,
  options: ReconcileOptions,
): Promise<Comparison> {
  const out: Comparison = {
    mismatches: [],
    total: 0,
    byKind: { missing_in_gold: 0, extra_in_gold: 0, different: 0 },
    instruments: new Map(),
  };
  for await (const m of streamBarMismatches(ch, options.comparison)) {
    out.total++;
    out.byKind[m.kind]++;
    out.instruments.set(m.instrument_id, (out.instruments.get(m.instrument_id) ?? 0) + 1);
    if (out.mismatches.length < options.limit) out.mismatches.push(m);
    if (out.total % 10_000 === 0) progress(TOOL, `${out.total} mismatches so far`);
  }
  return out;
}

const iso = (ms: number) => new Date(ms).toISOString();
const fmt = (v: unknown) => (typeof v === "number" ? String(v) : JSON.stringify(v));

function describe(m: BarMismatch): string {
  const head = `${m.kind.padEnd(15)} ${m.instrument_id} ${m.resolution} ${iso(m.start_ms)}`;
  const late = m.silver && m.silver.arrived_after_close > 0
    ? ` (${m.silver.arrived_after_close} event(s) arrived after close: likely late_event)`
    : "";
  if (m.kind === "different") {
    const diffs = m.differences.map((d) =>
      `${d.field}: silver=${fmt(d.expected)} gold=${fmt(d.actual)}`
    );
    return `${head}  ${diffs.join("; ")}${late}`;
  }
  const side = m.silver ?? m.gold;
  return `${head}  ${
    m.silver ? "silver" : "gold"
  }: o=${side?.open} h=${side?.high} l=${side?.low} c=${side?.close} v=${side?.volume} n=${side?.count}${late}`;
}

interface RepairRecord extends ReplayOutcome {
  instrument_id: string;
  mismatches: number;
}

async function repairAll(
  config: Config,
  options: ReconcileOptions,
  instruments: Map<string, number>,
): Promise<RepairRecord[]> {
  const repair = options.repair!;
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  const records: RepairRecord[] = [];
  try {
    for (const [instrumentId, count] of [...instruments].sort(([a], [b]) => a < b ? -1 : 1)) {
      progress(TOOL, `replaying ${instrumentId} from ${iso(options.comparison.fromMs)}`);
      const outcome = await replayInstrument({
        nodeUrl: repair.nodeUrl,
        token: repair.token,
        instrumentId,
        fromTime: options.comparison.fromMs,
        requestedBy: repair.requestedBy,
        timeoutMs: repair.timeoutMs,
      });
      progress(TOOL, `replay of ${instrumentId}: ${outcome.status}`);
      await recordAudit(sql, {
        actor: repair.requestedBy,
        action: "reconcile.repair",
        target: { kind: "instrument", key: instrumentId, from_time: options.comparison.fromMs },
        outcome: outcome.status,
        details: {
          job_id: outcome.job_id,
          http_status: outcome.http_status,
          mismatches: count,
          node_url: repair.nodeUrl,
          window: { from_ms: options.comparison.fromMs, to_ms: options.comparison.toMs },
          node_answer: outcome.detail,
        },
      });
      records.push({ instrument_id: instrumentId, mismatches: count, ...outcome });
    }
  } finally {
    await sql.end();
  }
  return records;
}

async function main(args: string[]): Promise<number> {
  const config = loadConfigFromEnv();
  const options = parseReconcileOptions(args, config, Date.now());
  if (options === "help") {
    console.log(HELP);
    return EXIT_CLEAN;
  }
  const c = options.comparison;
  const period = `[${iso(c.fromMs)}, ${iso(c.toMs)})`;
  const ch = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  try {
    progress(TOOL, `comparing ${c.windows.map((w) => w.name).join(",")} bars in ${period}`);
    const first = await compare(ch, options);
    progress(TOOL, `${first.total} mismatches in ${first.instruments.size} instruments`);
    let repairs: RepairRecord[] = [];
    let after: Comparison | null = null;
    if (options.repair && first.total > 0) {
      if (first.instruments.size > options.repair.maxRepairs) {
        throw new UsageError(
          `refusing to repair ${first.instruments.size} instruments (--max-repairs ${options.repair.maxRepairs}); narrow the period or --instrument-prefix, or raise --max-repairs`,
        );
      }
      repairs = await repairAll(config, options, first.instruments);
      const deadline = Date.now() + options.repair.verifyTimeoutMs;
      do {
        after = await compare(ch, options);
        if (after.total === 0) break;
        await sleep(1000);
      } while (Date.now() < deadline);
      progress(TOOL, `after repair: ${after.total} mismatches left`);
    }
    const final = after ?? first;
    const summary = {
      from_ms: c.fromMs,
      to_ms: c.toMs,
      resolutions: c.windows.map((w) => w.name),
      mismatches: first.total,
      missing_in_gold: first.byKind.missing_in_gold,
      extra_in_gold: first.byKind.extra_in_gold,
      different: first.byKind.different,
      instruments: first.instruments.size,
      repaired_ok: repairs.filter((r) => r.status === "done").length,
      repair_failed: repairs.filter((r) => r.status !== "done").length,
      remaining: final.total,
    };
    if (options.json) {
      console.log(JSON.stringify({
        summary,
        mismatches: first.mismatches,
        truncated: first.total > first.mismatches.length,
        repairs,
        remaining: after ? after.mismatches : null,
      }));
    } else {
      for (const m of first.mismatches) console.log(describe(m));
      if (first.total > first.mismatches.length) {
        console.log(`... ${first.total - first.mismatches.length} more (raise --limit)`);
      }
      for (const r of repairs) {
        console.log(
          `repair          ${r.instrument_id}: ${r.status}${r.job_id ? ` (job ${r.job_id})` : ""}`,
        );
      }
      const repairText = options.repair && first.total > 0
        ? `; repairs: ${summary.repaired_ok} done, ${summary.repair_failed} not done; ${final.total} mismatches left`
        : "";
      console.log(
        `reconcile: ${period} ${summary.resolutions.join(",")}: ${first.total} mismatches ` +
          `(${summary.missing_in_gold} missing in gold, ${summary.extra_in_gold} extra in gold, ` +
          `${summary.different} different) in ${summary.instruments} instruments${repairText}`,
      );
    }
    return final.total === 0 ? EXIT_CLEAN : EXIT_FOUND;
  } finally {
    await ch.close();
  }
}

if (import.meta.main) Deno.exit(await runCli(TOOL, main, Deno.args));
