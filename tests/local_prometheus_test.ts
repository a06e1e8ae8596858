/**
 * What `make start` adds for a user who wants a graph: a local Prometheus that scrapes the
 * node (deploy/local/prometheus.sh, run for real against a /metrics endpoint), and `make help`
 * listing every target.
 */
import assert from "node:assert/strict";
import { pollUntil } from "./support.ts";

const REPO = new URL("../", import.meta.url).pathname;

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: REPO,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("make help lists every target of the Makefile with a description", async () => {
  const makefile = await Deno.readTextFile(`${REPO}Makefile`);
  const targets = [...makefile.matchAll(/^([a-z][\w-]*):(?!=)/gm)].map((m) => m[1]!);
  assert.ok(targets.includes("start") && targets.includes("test"));
  const help = await run("make", ["-s", "help"]);
  assert.equal(help.code, 0, help.stderr);
  for (const target of targets) {
    assert.match(help.stdout, new RegExp(`^  ${target} +\\S`, "m"), `${target} not in make help`);
  }
  const dryRun = await run("make", ["-n", "start", "PROMETHEUS_PORT=9191"]);
  assert.match(dryRun.stdout, /PROMETHEUS_PORT=9191 bash deploy\/local\/prometheus\.sh/);
});

Deno.test("the local Prometheus scrapes the node's /metrics and loads the alert rules", async () => {
  const node = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    if (new URL(req.url).pathname !== "/metrics") return new Response("no", { status: 404 });
    return new Response("# TYPE data_processing_probe gauge\ndata_processing_probe 42\n");
  });
  const state = await Deno.makeTempDir({ prefix: "dp-prometheus-" });
  const port = freePort();
  const env = {
    DATA_PROC_LOCAL_STATE: state,
    PROMETHEUS_PORT: String(port),
    DATA_PROC_HTTP_PORT: String(node.addr.port),
  };
  try {
    const started = await run("bash", ["deploy/local/prometheus.sh"], env);
    assert.equal(started.code, 0, started.stderr);
    const again = await run("bash", ["deploy/local/prometheus.sh"], env);
    assert.match(again.stderr, /already answering/, "a second start must be a no-op");

    const api = async (path: string) => {
      const res = await fetch(`http://127.0.0.1:${port}${path}`);
      return (await res.json()).data;
    };
    const value = await pollUntil("the node's metric in Prometheus", async () => {
      const data = await api("/api/v1/query?query=data_processing_probe");
      return data.result[0]?.value[1] as string | undefined;
    }, { timeoutMs: 60_000, intervalMs: 500 });
    assert.equal(value, "42");
    const rules = await api("/api/v1/rules");
    const files = rules.groups.map((g: { file: string }) => g.file);
    assert.ok(files.includes(`${REPO}deploy/monitoring/alerts.yml`), `rules: ${files}`);

    // The README's throughput graph link: on the Makefile's port, a page this Prometheus
    // serves, and an expression it evaluates.
    const readme = await Deno.readTextFile(`${REPO}README.md`);
    const link = /\[throughput graph\]\((http:\/\/127\.0\.0\.1:(\d+)(\/graph\?\S+))\)/
      .exec(readme);
    assert.ok(link, "no throughput graph link in README.md");
    const makefile = await Deno.readTextFile(`${REPO}Makefile`);
    assert.equal(link[2], /^PROMETHEUS_PORT \?= (\d+)$/m.exec(makefile)?.[1]);
    const page = await fetch(`http://127.0.0.1:${port}${link[3]}`);
    await page.body?.cancel();
    assert.equal(page.status, 200, `GET ${link[3]}`);
    const expr = new URL(link[1]!).searchParams.get("g0.expr")!;
    assert.match(expr, /data_processing_events_total/);
    const res = await fetch(
      `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(expr)}`,
    );
    assert.equal((await res.json()).status, "success", expr);
  } finally {
    const stopped = await run("bash", ["deploy/local/prometheus.sh", "stop"], env);
    await node.shutdown();
    await Deno.remove(state, { recursive: true });
    assert.equal(stopped.code, 0, stopped.stderr);
  }
});
