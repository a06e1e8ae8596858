/**
 * `deno task dq`: data-quality checks over silver (stale instruments, price spikes,
 * curves missing tenors, non-positive sizes). Run with `--help` for options and exit codes.
 */
import { loadConfigFromEnv } from "../config/config.ts";
import { sleep } from "../timing/sleep.ts";
import { type ClickHouseClient, createClickHouse } from "../stores/clickhouse.ts";
import {
  type FlagSpec,
  parseDuration,
  parseFlags,
  parseNumber,
  stringFlag,
  UsageError,
} from "./cli_args.ts";
import { EXIT_CLEAN, EXIT_FOUND, progress, runCli } from "./cli_run.ts";
import {
  type DqFinding,
  findNonPositiveSizes,
  findSpikes,
  findStale,
  findTenorGaps,
} from "./dq_checks.ts";

const TOOL = "dq";

export const HELP = `Usage: deno task dq --mode immediate [options]

Data-quality checks over ClickHouse silver:
  stale              instruments whose newest tick is older than --stale-after
                     (among instruments with a tick within --stale-lookback)
  spike              ticks in --spike-window whose price is more than --spike-sigma
                     standard deviations from the mean of the instrument's other ticks in
                     the window (leave-one-out; instruments with at least
                     --spike-min-samples ticks; an otherwise constant series reports any move)
  missing_tenors     curves whose newest as_of lacks tenors the previous as_of had
                     (run it after the day's curves are complete)
  too_few_tenors     with --expected-tenors N: curves whose newest as_of has fewer tenors
  non_positive_size  ticks with size <= 0 (or NaN) anywhere in silver, per instrument

Options:
  --mode immediate       run the checks once (required; also --mode watch --interval D:
                         run them every D until interrupted)
  --interval D           with --mode watch: time between rounds (default 5m)
  --stale-after D        default 15m (durations: 30s, 15m, 24h, 7d)
  --stale-lookback D     default 7d
  --spike-sigma N        default 6
  --spike-window D       default 24h
  --spike-min-samples N  default 30
  --expected-tenors N    also report curves whose newest as_of has fewer than N tenors
  --tenor-gap-check      compare newest and previous as_of tenors (the default)
  --no-tenor-gap-check   skip that comparison
  --checks LIST          only these checks: stale,spike,tenors,sizes (default all)
  --instrument-prefix P  only instruments whose id starts with P
  --curve-prefix P       only curves whose id starts with P
  --limit N              spike findings listed at most (default 1000)
  --json                 one JSON report on stdout per round instead of text
  --help                 this text

Exit codes: 0 nothing found, 1 findings, 2 bad arguments or configuration,
3 failure (store unreachable, query error). In watch mode, the code of the last round.
`;

const FLAGS: FlagSpec = {
  "mode": { type: "string" },
  "interval": { type: "string" },
  "stale-after": { type: "string" },
  "stale-lookback": { type: "string" },
  "spike-sigma": { type: "string" },
  "spike-window": { type: "string" },
  "spike-min-samples": { type: "string" },
  "expected-tenors": { type: "string" },
  "tenor-gap-check": { type: "boolean" },
  "no-tenor-gap-check": { type: "boolean" },
  "checks": { type: "string" },
  "instrument-prefix": { type: "string" },
  "curve-prefix": { type: "string" },
  "limit": { type: "string" },
  "json": { type: "boolean" },
  "help": { type: "boolean" },
};

const CHECKS = ["stale", "spike", "tenors", "sizes"] as const;
type CheckName = typeof CHECKS[number];

export interface DqOptions {
  watchIntervalMs: number | null;
  checks: Set<CheckName>;
  staleAfterMs: number;
  staleLookbackMs: number;
  spikeSigma: number;
  spikeWindowMs: number;
  spikeMinSamples: number;
  expectedTenors?: number;
  tenorGapCheck: boolean;
  instrumentPrefix?: string;
  curvePrefix?: string;
  limit: number;
  json: boolean;
}

export function parseDqOptions(args: readonly string[]): DqOptions | "help" {
  const v = parseFlags(args, FLAGS);
  if (v["help"]) return "help";
  const mode = stringFlag(v, "mode");
  if (mode === undefined) throw new UsageError("--mode is required (--mode immediate)");
  if (mode !== "immediate" && mode !== "watch") {
    throw new UsageError(`--mode must be immediate or watch, got ${JSON.stringify(mode)}`);
  }
  const interval = stringFlag(v, "interval");
  if (interval !== undefined && mode !== "watch") {
    throw new UsageError("--interval only applies with --mode watch");
  }
  if (v["tenor-gap-check"] && v["no-tenor-gap-check"]) {
    throw new UsageError("--tenor-gap-check and --no-tenor-gap-check exclude each other");
  }
  const checks = new Set<CheckName>();
  const checksFlag = stringFlag(v, "checks");
  for (const c of (checksFlag ?? CHECKS.join(",")).split(",").map((s) => s.trim())) {
    if (!CHECKS.includes(c as CheckName)) {
      throw new UsageError(`--checks takes ${CHECKS.join(",")}, got ${JSON.stringify(c)}`);
    }
    checks.add(c as CheckName);
  }
  const str = (name: string, fallback: string) => stringFlag(v, name) ?? fallback;
  const expected = stringFlag(v, "expected-tenors");
  const instrumentPrefix = stringFlag(v, "instrument-prefix");
  const curvePrefix = stringFlag(v, "curve-prefix");
  return {
    watchIntervalMs: mode === "watch" ? parseDuration("interval", interval ?? "5m") : null,
    checks,
    staleAfterMs: parseDuration("stale-after", str("stale-after", "15m")),
    staleLookbackMs: parseDuration("stale-lookback", str("stale-lookback", "7d")),
    spikeSigma: parseNumber("spike-sigma", str("spike-sigma", "6"), { min: 0 }),
    spikeWindowMs: parseDuration("spike-window", str("spike-window", "24h")),
    spikeMinSamples: parseNumber("spike-min-samples", str("spike-min-samples", "30"), {
      min: 2,
      integer: true,
    }),
    ...(expected !== undefined
      ? { expectedTenors: parseNumber("expected-tenors", expected, { min: 1, integer: true }) }
      : {}),
    tenorGapCheck: !v["no-tenor-gap-check"],
    ...(instrumentPrefix ? { instrumentPrefix } : {}),
    ...(curvePrefix ? { curvePrefix } : {}),
    limit: parseNumber("limit", str("limit", "1000"), { min: 0, integer: true }),
    json: Boolean(v["json"]),
  };
}

async function runChecks(
  ch: ClickHouseClient,
  silverDb: string,
  o: DqOptions,
  nowMs: number,
): Promise<DqFinding[]> {
  const findings: DqFinding[] = [];
  const ip = o.instrumentPrefix ? { prefix: o.instrumentPrefix } : {};
  if (o.checks.has("stale")) {
    progress(TOOL, "checking stale instruments");
    findings.push(
      ...await findStale(ch, {
        silverDb,
        nowMs,
        staleAfterMs: o.staleAfterMs,
        lookbackMs: o.staleLookbackMs,
        ...ip,
      }),
    );
  }
  if (o.checks.has("spike")) {
    progress(TOOL, "checking price spikes");
    findings.push(
      ...await findSpikes(ch, {
        silverDb,
        nowMs,
        windowMs: o.spikeWindowMs,
        sigma: o.spikeSigma,
        minSamples: o.spikeMinSamples,
        limit: o.limit,
        ...ip,
      }),
    );
  }
  if (o.checks.has("tenors") && (o.tenorGapCheck || o.expectedTenors !== undefined)) {
    progress(TOOL, "checking curve tenors");
    findings.push(
      ...await findTenorGaps(ch, {
        silverDb,
        gapCheck: o.tenorGapCheck,
        ...(o.expectedTenors !== undefined ? { expectedTenors: o.expectedTenors } : {}),
        ...(o.curvePrefix ? { prefix: o.curvePrefix } : {}),
      }),
    );
  }
  if (o.checks.has("sizes")) {
    progress(TOOL, "checking non-positive sizes");
    findings.push(...await findNonPositiveSizes(ch, { silverDb, ...ip }));
  }
  return findings;
}

const iso = (ms: number) => new Date(ms).toISOString();

function describe(f: DqFinding): string {
  switch (f.check) {
    case "stale":
      return `stale              ${f.instrument_id}: newest tick ${iso(f.last_event_time_ms)} (${
        Math.round(f.age_ms / 1000)
      }s ago)`;
    case "spike":
      return `spike              ${f.instrument_id} ${f.event_id} at ${
        iso(f.event_time_ms)
      }: price ${f.price} is ${
        f.sigmas.toPrecision(4)
      } sigma from mean ${f.mean} (sd ${f.stddev}, n=${f.samples})`;
    case "missing_tenors":
      return `missing_tenors     ${f.curve_id} ${f.as_of} lacks ${
        f.missing.join(", ")
      } (present on ${f.previous_as_of})`;
    case "too_few_tenors":
      return `too_few_tenors     ${f.curve_id} ${f.as_of}: ${f.tenors} tenors, expected ${f.expected}`;
    case "non_positive_size":
      return `non_positive_size  ${f.instrument_id}: ${f.count} tick(s), min size ${f.min_size}, e.g. ${
        f.sample_event_ids.join(", ")
      }`;
  }
}

function report(findings: DqFinding[], o: DqOptions, nowMs: number): void {
  const counts: Record<string, number> = {
    stale: 0,
    spike: 0,
    missing_tenors: 0,
    too_few_tenors: 0,
    non_positive_size: 0,
  };
  for (const f of findings) counts[f.check] = (counts[f.check] ?? 0) + 1;
  if (o.json) {
    console.log(JSON.stringify({
      summary: { at_ms: nowMs, findings: findings.length, ...counts },
      findings,
    }));
    return;
  }
  for (const f of findings) console.log(describe(f));
  const parts = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
  console.log(`dq: ${iso(nowMs)}: ${findings.length} findings (${parts})`);
}

async function main(args: string[]): Promise<number> {
  const options = parseDqOptions(args);
  if (options === "help") {
    console.log(HELP);
    return EXIT_CLEAN;
  }
  const config = loadConfigFromEnv();
  const ch = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  if (options.watchIntervalMs !== null) {
    Deno.addSignalListener("SIGINT", onSignal);
    Deno.addSignalListener("SIGTERM", onSignal);
  }
  try {
    let code = EXIT_CLEAN;
    do {
      const nowMs = Date.now();
      const findings = await runChecks(ch, config.DATA_PROC_CLICKHOUSE_SILVER_DB, options, nowMs);
      report(findings, options, nowMs);
      code = findings.length > 0 ? EXIT_FOUND : EXIT_CLEAN;
      if (options.watchIntervalMs === null) break;
      await sleep(options.watchIntervalMs, stop.signal);
    } while (!stop.signal.aborted);
    return code;
  } finally {
    if (options.watchIntervalMs !== null) {
      Deno.removeSignalListener("SIGINT", onSignal);
      Deno.removeSignalListener("SIGTERM", onSignal);
    }
    await ch.close();
  }
}

if (import.meta.main) Deno.exit(await runCli(TOOL, main, Deno.args));
