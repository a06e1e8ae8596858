/**
 * `deno task projection:reconcile`: compares the Redis projections with ClickHouse and,
 * without `--dry-run`, repairs Redis. Run with `--help` for the options and exit codes.
 */
import { type Config, loadConfigFromEnv } from "../config/config.ts";
import { recordAudit } from "../stores/audit_log.ts";
import { type ClickHouseClient, createClickHouse } from "../stores/clickhouse.ts";
import { createPostgres, type Sql } from "../stores/postgres.ts";
import { createRedis, type Redis } from "../stores/redis.ts";
import type { FieldDifference } from "./bar_diff.ts";
import { type FlagSpec, parseFlags, parseNumber, stringFlag, UsageError } from "./cli_args.ts";
import { EXIT_CLEAN, EXIT_FOUND, progress, runCli } from "./cli_run.ts";
import {
  diffBar,
  diffCurve,
  diffLatest,
  type ProjectionKind,
  type ProjectionVerdict,
  storedVersion,
} from "./projection_diff.ts";
import { expectedBars, expectedCurves, expectedLatest } from "./projection_expected.ts";

const TOOL = "projection:reconcile";
const KINDS: readonly ProjectionKind[] = ["latest", "bar", "curve"];

export const HELP = `Usage: deno task projection:reconcile [options]

Compares the Redis projections (under DATA_PROC_REDIS_PREFIX, scanned with SCAN) with
ClickHouse:
  projection:latest:{instrument_id}     vs silver.ticks FINAL, greatest (event_time_ms, event_id)
  projection:bar:{resolution}:{id}      vs the newest gold.bars FINAL row of that instrument
                                        and resolution
  projection:curve:{curve_id}           vs gold.curves FINAL for the curve's newest as_of
and reports instruments and curves that ClickHouse has but Redis lacks. Without
--dry-run it repairs Redis: it writes the value ClickHouse implies, with
version = max(stored version, gold version) + 1 so version-guarded writers never see it
go back, only if the key did not change since it was read; each repair is recorded in
audit_log (action projection.repair).

A Redis value that is ahead of ClickHouse (a newer tick, a newer bar, a newer as_of) is
reported as "ahead" and left alone: the live writers update Redis before ClickHouse's
batched flush lands. It does not count as a difference. Redis is read before ClickHouse.

Options:
  --dry-run              report only; write nothing
  --kind K               latest, bar or curve (repeatable or comma-separated; default all)
  --delete-orphans       also delete keys ClickHouse knows nothing about (default: report)
  --requested-by NAME    who repairs, for the audit log (default projection:reconcile)
  --limit N              findings listed in the output (default 1000; counts are full)
  --json                 one JSON report on stdout instead of text
  --help                 this text

Exit codes: 0 clean, or every difference repaired; 1 differences found in --dry-run mode,
or some left unrepaired (orphans without --delete-orphans, keys changed meanwhile);
2 bad arguments or configuration; 3 failure (store unreachable, query error).
`;

const FLAGS: FlagSpec = {
  "dry-run": { type: "boolean" },
  "kind": { type: "string", multiple: true },
  "delete-orphans": { type: "boolean" },
  "requested-by": { type: "string" },
  "limit": { type: "string" },
  "json": { type: "boolean" },
  "help": { type: "boolean" },
};

export interface ProjectionReconcileOptions {
  dryRun: boolean;
  kinds: ProjectionKind[];
  deleteOrphans: boolean;
  requestedBy: string;
  limit: number;
  json: boolean;
}

export function parseProjectionReconcileOptions(
  args: readonly string[],
): ProjectionReconcileOptions | "help" {
  const v = parseFlags(args, FLAGS);
  if (v["help"]) return "help";
  const kindValues = (v["kind"] as string[] | undefined) ?? [];
  const kinds = new Set<ProjectionKind>();
  for (const k of kindValues.flatMap((s) => s.split(",")).map((s) => s.trim())) {
    if (!KINDS.includes(k as ProjectionKind)) {
      throw new UsageError(`--kind must be one of ${KINDS.join(", ")}, got ${JSON.stringify(k)}`);
    }
    kinds.add(k as ProjectionKind);
  }
  const limit = stringFlag(v, "limit");
  return {
    dryRun: Boolean(v["dry-run"]),
    kinds: kinds.size === 0 ? [...KINDS] : KINDS.filter((k) => kinds.has(k)),
    deleteOrphans: Boolean(v["delete-orphans"]),
    requestedBy: stringFlag(v, "requested-by") ?? "projection:reconcile",
    limit: limit === undefined ? 1000 : parseNumber("limit", limit, { min: 0, integer: true }),
    json: Boolean(v["json"]),
  };
}

export type Problem = "missing_in_redis" | "different" | "invalid" | "orphan_in_redis" | "ahead";

export interface ProjectionFinding {
  kind: ProjectionKind;
  key: string;
  /** instrument_id, `${resolution}:${instrument_id}` or curve_id. */
  id: string;
  problem: Problem;
  differences: FieldDifference[];
  message?: string;
  /** What ClickHouse implies (without version), null for orphans. */
  expected: Record<string, unknown> | null;
  /** The stored raw value, null when missing. */
  stored: string | null;
  /** The version ClickHouse holds (gold bars and curves; 0 for latest and orphans). */
  gold_version: number;
  /** Set when a repair was attempted: `repaired`, `deleted` or `changed_meanwhile`. */
  repair?: string;
  new_version?: number;
}

/** Escapes Redis glob characters so a prefix matches literally. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\^]/g, "\\$&");
}

async function scanValues(redis: Redis, pattern: string): Promise<Map<string, string | null>> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== "0");
  const unique = [...new Set(keys)].sort();
  const values = new Map<string, string | null>();
  for (let i = 0; i < unique.length; i += 500) {
    const chunk = unique.slice(i, i + 500);
    const got = await redis.mget(...chunk);
    chunk.forEach((k, j) => values.set(k, got[j] ?? null));
  }
  return values;
}

interface KindSpec {
  expected: Map<string, { value: Record<string, unknown>; goldVersion: number }>;
  diff: (raw: string, expected: never) => ProjectionVerdict;
}

async function loadExpected(
  kind: ProjectionKind,
  ch: ClickHouseClient,
  config: Config,
): Promise<KindSpec> {
  switch (kind) {
    case "latest":
      return {
        expected: await expectedLatest(ch, config.DATA_PROC_CLICKHOUSE_SILVER_DB),
        diff: diffLatest as KindSpec["diff"],
      };
    case "bar":
      return {
        expected: await expectedBars(ch, config.DATA_PROC_CLICKHOUSE_GOLD_DB),
        diff: diffBar as KindSpec["diff"],
      };
    case "curve":
      return {
        expected: await expectedCurves(ch, config.DATA_PROC_CLICKHOUSE_GOLD_DB),
        diff: diffCurve as KindSpec["diff"],
      };
  }
}

async function checkKind(
  kind: ProjectionKind,
  redis: Redis,
  ch: ClickHouseClient,
  config: Config,
): Promise<{ checked: number; findings: ProjectionFinding[] }> {
  const keyPrefix = `${config.DATA_PROC_REDIS_PREFIX}projection:${kind}:`;
  // Redis first, ClickHouse second: ClickHouse is then at least as new as what was read.
  const stored = await scanValues(redis, `${globEscape(keyPrefix)}*`);
  progress(TOOL, `${kind}: ${stored.size} keys in Redis`);
  const spec = await loadExpected(kind, ch, config);
  progress(TOOL, `${kind}: ${spec.expected.size} expected from ClickHouse`);
  const findings: ProjectionFinding[] = [];
  for (const [key, raw] of stored) {
    const id = key.slice(keyPrefix.length);
    const expected = spec.expected.get(id);
    if (!expected) {
      findings.push({
        kind,
        key,
        id,
        problem: "orphan_in_redis",
        differences: [],
        expected: null,
        stored: raw,
        gold_version: 0,
      });
      continue;
    }
    if (raw === null) continue; // expired or deleted between SCAN and MGET: seen as missing below
    const verdict = spec.diff(raw, expected as never);
    if (verdict.status === "same") continue;
    findings.push({
      kind,
      key,
      id,
      problem: verdict.status,
      differences: verdict.status === "invalid" ? [] : verdict.differences,
      ...(verdict.status === "invalid" ? { message: verdict.message } : {}),
      expected: expected.value,
      stored: raw,
      gold_version: expected.goldVersion,
    });
  }
  for (const [id, expected] of spec.expected) {
    const key = `${keyPrefix}${id}`;
    if (stored.get(key) != null) continue;
    findings.push({
      kind,
      key,
      id,
      problem: "missing_in_redis",
      differences: [],
      expected: expected.value,
      stored: null,
      gold_version: expected.goldVersion,
    });
  }
  return { checked: Math.max(stored.size, spec.expected.size), findings };
}

/** Writes `next` (or deletes when null) only if the key still holds `previous`. */
const COMPARE_AND_SET = `
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '0' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
if ARGV[3] == '1' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[4])
end
return 1`;

async function repair(
  finding: ProjectionFinding,
  redis: Redis,
  sql: Sql,
  requestedBy: string,
): Promise<void> {
  const remove = finding.problem === "orphan_in_redis";
  const oldVersion = storedVersion(finding.stored);
  const newVersion = Math.max(oldVersion, finding.gold_version) + 1;
  const next = remove ? "" : JSON.stringify({ ...finding.expected, version: newVersion });
  const done = await redis.eval(
    COMPARE_AND_SET,
    1,
    finding.key,
    finding.stored === null ? "0" : "1",
    finding.stored ?? "",
    remove ? "1" : "0",
    next,
  );
  finding.repair = done === 1 ? (remove ? "deleted" : "repaired") : "changed_meanwhile";
  if (!remove && done === 1) finding.new_version = newVersion;
  await recordAudit(sql, {
    actor: requestedBy,
    action: "projection.repair",
    target: { kind: finding.kind, key: finding.key, id: finding.id },
    outcome: done === 1 ? "ok" : "skipped",
    details: {
      problem: finding.problem,
      result: finding.repair,
      differences: finding.differences,
      old_version: oldVersion,
      new_version: remove || done !== 1 ? null : newVersion,
      ...(finding.message ? { message: finding.message } : {}),
    },
  });
}

function describe(f: ProjectionFinding): string {
  const head = `${f.problem.padEnd(16)} ${f.key}`;
  const detail = f.message ??
    f.differences.map((d) =>
      `${d.field}: clickhouse=${JSON.stringify(d.expected)} redis=${JSON.stringify(d.actual)}`
    ).join("; ");
  const repaired = f.repair ? ` -> ${f.repair}${f.new_version ? ` v${f.new_version}` : ""}` : "";
  return `${head}${detail ? `  ${detail}` : ""}${repaired}`;
}

async function main(args: string[]): Promise<number> {
  const options = parseProjectionReconcileOptions(args);
  if (options === "help") {
    console.log(HELP);
    return EXIT_CLEAN;
  }
  const config = loadConfigFromEnv();
  const redis = createRedis(config.DATA_PROC_REDIS_URL);
  const ch = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  let sql: Sql | null = null;
  try {
    const findings: ProjectionFinding[] = [];
    const checked: Record<string, number> = {};
    for (const kind of options.kinds) {
      const result = await checkKind(kind, redis, ch, config);
      checked[kind] = result.checked;
      findings.push(...result.findings);
    }
    findings.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const problems = findings.filter((f) => f.problem !== "ahead");
    const toRepair = options.dryRun
      ? []
      : problems.filter((f) => f.problem !== "orphan_in_redis" || options.deleteOrphans);
    if (toRepair.length > 0) {
      sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 1 });
      for (const [i, f] of toRepair.entries()) {
        await repair(f, redis, sql, options.requestedBy);
        if ((i + 1) % 1000 === 0) progress(TOOL, `repaired ${i + 1}/${toRepair.length}`);
      }
    }
    const unrepaired = problems.filter((f) => f.repair !== "repaired" && f.repair !== "deleted");
    const count = (p: Problem) => findings.filter((f) => f.problem === p).length;
    const summary = {
      dry_run: options.dryRun,
      checked,
      differences: problems.length,
      missing_in_redis: count("missing_in_redis"),
      different: count("different"),
      invalid: count("invalid"),
      orphan_in_redis: count("orphan_in_redis"),
      ahead: count("ahead"),
      repaired: findings.filter((f) => f.repair === "repaired" || f.repair === "deleted").length,
      unrepaired: unrepaired.length,
    };
    const listed = findings.slice(0, options.limit);
    if (options.json) {
      console.log(JSON.stringify({
        summary,
        findings: listed,
        truncated: findings.length > listed.length,
      }));
    } else {
      for (const f of listed) console.log(describe(f));
      if (findings.length > listed.length) {
        console.log(`... ${findings.length - listed.length} more (raise --limit)`);
      }
      const checkedText = Object.entries(checked).map(([k, n]) => `${k} ${n}`).join(", ");
      console.log(
        `${TOOL}: checked ${checkedText}: ${summary.differences} differences ` +
          `(${summary.missing_in_redis} missing in Redis, ${summary.different} different, ` +
          `${summary.invalid} invalid, ${summary.orphan_in_redis} orphans), ` +
          `${summary.ahead} ahead of ClickHouse; ` +
          (options.dryRun
            ? "dry run, nothing written"
            : `${summary.repaired} repaired, ${summary.unrepaired} left`),
      );
    }
    if (options.dryRun) return problems.length > 0 ? EXIT_FOUND : EXIT_CLEAN;
    return unrepaired.length > 0 ? EXIT_FOUND : EXIT_CLEAN;
  } finally {
    redis.disconnect();
    await ch.close();
    if (sql) await sql.end();
  }
}

if (import.meta.main) Deno.exit(await runCli(TOOL, main, Deno.args));
