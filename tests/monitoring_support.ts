/**
 * What the monitoring tests need to read deploy/monitoring/: the PromQL of the dashboard
 * and of the alert rules, the metric names an expression selects, and the metric families
 * a /metrics exposition declares.
 */
import { parse as parseYaml } from "yaml";

export const MONITORING_DIR = new URL("../deploy/monitoring/", import.meta.url).pathname;
export const DASHBOARD_FILE = `${MONITORING_DIR}dashboards/data-processing.json`;
export const ALERTS_FILE = `${MONITORING_DIR}alerts.yml`;

export interface NamedExpr {
  /** Where the expression is (panel title and target, or alert name). */
  where: string;
  expr: string;
}

/** Every PromQL expression of a Grafana dashboard: panel targets and query variables. */
export function dashboardExprs(dashboard: unknown): NamedExpr[] {
  const out: NamedExpr[] = [];
  const d = dashboard as {
    panels?: { title?: string; targets?: { expr?: string; refId?: string }[] }[];
    templating?: { list?: { name?: string; type?: string; query?: unknown }[] };
  };
  for (const panel of d.panels ?? []) {
    for (const [i, target] of (panel.targets ?? []).entries()) {
      if (target.expr) out.push({ where: `panel "${panel.title}" #${i}`, expr: target.expr });
    }
  }
  for (const v of d.templating?.list ?? []) {
    const query = typeof v.query === "string" ? v.query : undefined;
    const labelValues = query ? /^label_values\((\w+),\s*\w+\)$/.exec(query) : null;
    if (v.type === "query" && labelValues) {
      // Grafana's label_values(metric, label): the series selector is the metric.
      out.push({ where: `variable ${v.name}`, expr: labelValues[1]! });
    }
  }
  return out;
}

/** Every alerting or recording rule expression of a Prometheus rules file. */
export function ruleExprs(yamlText: string): NamedExpr[] {
  const doc = parseYaml(yamlText) as {
    groups: { name: string; rules: { alert?: string; record?: string; expr: string }[] }[];
  };
  return doc.groups.flatMap((g) =>
    g.rules.map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: String(r.expr) }))
  );
}

/**
 * Grafana's variables replaced by values Prometheus accepts, so a dashboard query can be
 * checked by promtool as it will run.
 */
export function withGrafanaVariables(expr: string): string {
  return expr
    .replaceAll("$__rate_interval", "5m")
    .replaceAll("$__interval", "1m")
    .replaceAll("$__range", "1h")
    .replaceAll("$job", ".*");
}

const KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "bool",
  "offset",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "inf",
  "nan",
]);

/**
 * The metric names a PromQL expression selects. Enough of PromQL for this project's
 * queries: string literals, label matchers, ranges and grouping clauses are dropped, then
 * every identifier that is not a function call, keyword or number is a metric name.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, " ")
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, " ")
    .replace(/\b\d+(\.\d+)?([eE][+-]?\d+)?\b/g, " ");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = stripped.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest) || KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Metric families declared by `# TYPE` lines of a Prometheus text exposition, with type. */
export function exposedFamilies(exposition: string): Map<string, string> {
  const families = new Map<string, string>();
  for (const line of exposition.split("\n")) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (m) families.set(m[1]!, m[2]!);
  }
  return families;
}

/** Series Prometheus makes itself when it scrapes, never in an exposition. */
const SCRAPE_SERIES = new Set(["up", "scrape_duration_seconds", "scrape_samples_scraped"]);

/**
 * Whether a metric name a query uses is served: a family of that name, a histogram or
 * summary's `_bucket`/`_sum`/`_count` series, or a series Prometheus adds at scrape.
 */
export function isServed(name: string, families: Map<string, string>): boolean {
  if (families.has(name) || SCRAPE_SERIES.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!m) return false;
  const type = families.get(m[1]!);
  return type === "histogram" || (type === "summary" && m[2] !== "bucket");
}

/** Runs promtool with `args`; returns its exit code and output. */
export async function promtool(
  args: string[],
  cwd = MONITORING_DIR,
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command("promtool", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, output: `${decode(out.stdout)}${decode(out.stderr)}` };
}
