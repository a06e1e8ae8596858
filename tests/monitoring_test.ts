/**
 * Monitoring as code (deploy/monitoring/): the committed dashboard is its generator's
 * output; the alert rules load and pass their promtool unit tests; every dashboard query
 * parses; and every metric a query or rule names is served by a real node's /metrics.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { renderDashboard } from "../deploy/monitoring/dashboard.ts";
import { spawnNode, waitReady } from "./node_process.ts";
import {
  ALERTS_FILE,
  DASHBOARD_FILE,
  dashboardExprs,
  exposedFamilies,
  isServed,
  metricNames,
  MONITORING_DIR,
  type NamedExpr,
  promtool,
  ruleExprs,
  withGrafanaVariables,
} from "./monitoring_support.ts";
import { freshEnv, pollUntil } from "./support.ts";

const dashboard = () => JSON.parse(Deno.readTextFileSync(DASHBOARD_FILE));
const allExprs = (): NamedExpr[] => [
  ...dashboardExprs(dashboard()),
  ...ruleExprs(Deno.readTextFileSync(ALERTS_FILE)),
];

Deno.test("the committed dashboard is what deploy/monitoring/dashboard.ts generates", () => {
  strictEqual(
    Deno.readTextFileSync(DASHBOARD_FILE),
    renderDashboard(),
    "run `deno task monitoring:build` and commit the result",
  );
});

Deno.test("the dashboard has the panels operators need, each with a query", () => {
  const d = dashboard();
  const titles: string[] = d.panels.filter((p: { type: string }) => p.type !== "row").map((
    p: { title: string },
  ) => p.title);
  for (
    const wanted of [
      /throughput/i,
      /consumer lag/i,
      /watermark lag/i,
      /p50 \/ p99.*SLO/i,
      /DLQ/i,
      /live and stored actors/i,
      /flush duration/i,
      /restarts and rebalances/i,
      /sink failures/i,
      /memory/i,
    ]
  ) {
    ok(titles.some((t) => wanted.test(t)), `no panel matches ${wanted}: ${titles.join(", ")}`);
  }
  const ids = d.panels.map((p: { id: number }) => p.id);
  strictEqual(new Set(ids).size, ids.length, "panel ids are unique");
  const exprs = dashboardExprs(d);
  ok(exprs.length >= titles.length);
});

Deno.test("metricNames finds the selected metrics of a PromQL expression", () => {
  deepStrictEqual(
    metricNames(
      'histogram_quantile(0.99, sum by (le, stage) (rate(processing_latency_ms_bucket{job=~"$job",le=~"1|2"}[$__rate_interval])))',
    ),
    ["processing_latency_ms_bucket"],
  );
  deepStrictEqual(
    metricNames(
      "time() - max by (topic) (a_seconds{x='y'}) > 300 and deriv(b_total[10m]) > (14.4 * 0.01) or on (job) up == 0",
    ),
    ["a_seconds", "b_total", "up"],
  );
  const families = new Map([["h_ms", "histogram"], ["c_total", "counter"]]);
  deepStrictEqual(
    ["h_ms_bucket", "h_ms_count", "c_total", "c_total_count", "up", "gone_total"].map((n) =>
      isServed(n, families)
    ),
    [true, true, true, false, true, false],
  );
});

Deno.test("alert rules load and pass their promtool unit tests", async () => {
  const check = await promtool(["check", "rules", "alerts.yml"]);
  strictEqual(check.code, 0, check.output);
  const unit = await promtool(["test", "rules", "alerts_test.yml"]);
  strictEqual(unit.code, 0, unit.output);
  const alerts = ruleExprs(Deno.readTextFileSync(ALERTS_FILE)).map((r) => r.where);
  for (
    const name of [
      "ConsumerLagGrowing",
      "WatermarkStalled",
      "DLQRatioHigh",
      "LatencySLOBurnFast",
      "NodeDown",
      "Restarting",
      "SinkFailing",
    ]
  ) {
    ok(alerts.some((a) => a === `rule DataProcessing${name}`), `alert ${name} missing`);
  }
  // Every alert has a unit test.
  const tests = Deno.readTextFileSync(`${MONITORING_DIR}alerts_test.yml`);
  for (const a of alerts) {
    ok(tests.includes(`alertname: ${a.slice("rule ".length)}`), `${a} has no unit test`);
  }
});

Deno.test("every dashboard query parses (promtool, as recording rules)", async () => {
  const exprs = dashboardExprs(dashboard());
  const rules = {
    groups: [{
      name: "dashboard",
      rules: exprs.map((e, i) => ({
        record: `dashboard:query:${i}`,
        expr: withGrafanaVariables(e.expr),
      })),
    }],
  };
  const dir = await Deno.makeTempDir({ prefix: "dashboard-rules-" });
  try {
    // JSON is YAML: promtool reads it as a rules file.
    await Deno.writeTextFile(`${dir}/rules.yml`, JSON.stringify(rules, null, 2));
    const check = await promtool(["check", "rules", `${dir}/rules.yml`]);
    strictEqual(check.code, 0, `${check.output}\n${exprs.map((e) => e.where).join("\n")}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "every metric a dashboard query or alert rule names is served by a real node's /metrics",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv();
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      // The lag monitor's first reading: labelled series of both stages exist.
      const exposition = await pollUntil("consumer lag series on /metrics", async () => {
        const text = await (await fetch(`${node.url}/metrics`)).text();
        return text.includes("data_processing_consumer_lag{") ? text : undefined;
      });
      const families = exposedFamilies(exposition);
      const missing = allExprs().flatMap(({ where, expr }) =>
        metricNames(expr).filter((n) => !isServed(n, families)).map((n) => `${where}: ${n}`)
      );
      deepStrictEqual(missing, [], `not on /metrics:\n${missing.join("\n")}`);
      // Runtime and build metrics are served too.
      ok(
        /^data_processing_build_info\{version="[^"]+",commit="[^"]+",deno="[^"]+"\} 1$/m.test(
          exposition,
        ),
      );
      ok(/^process_resident_memory_bytes [1-9]\d*$/m.test(exposition), "resident memory > 0");
      ok(/^nodejs_heap_size_used_bytes [1-9]/m.test(exposition));
      // A node started the way `deno task start` starts it has V8's old space capped at 1 GiB and
      // its young generation at 24 MiB (three 8 MiB semi-spaces; the limit is their sum). V8's
      // defaults here would be ~4 GiB and 96 MiB.
      const gauge = (name: string) =>
        Number(new RegExp(`^${name} (\\S+)$`, "m").exec(exposition)?.[1]);
      const limitMiB = gauge("data_processing_heap_limit_bytes") / 2 ** 20;
      ok(limitMiB >= 1024 && limitMiB <= 1024 + 24, `heap limit ${limitMiB} MiB`);
      const used = gauge("data_processing_heap_used_ratio");
      ok(used > 0 && used < 0.5, `heap used ratio ${used}`);
      // And glibc's malloc limited to two arenas, as the task sets it.
      // (Reading /proc directly needs every permission; `cat` needs only --allow-run.)
      const { stdout } = await new Deno.Command("cat", { args: [`/proc/${node.pid}/environ`] })
        .output();
      const environ = new TextDecoder().decode(stdout).split("\0");
      ok(environ.includes("MALLOC_ARENA_MAX=2"), "MALLOC_ARENA_MAX=2 in the node's environment");
      strictEqual(await node.kill("SIGTERM"), 0);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});
