/**
 * The status page (`GET /`) of a real node (child process of main.ts) over the real stack,
 * loaded in headless Chromium (Debian's `chromium`, installed by deploy/local/tools.sh): it
 * shows the node's id, every partition the node owns according to `GET /partitions`, live
 * instrument actors, the hot keys, a `late_event` DLQ count, a finished replay job, and never
 * the admin token. A screenshot is saved under `$TEST_ARTIFACTS_DIR` (default
 * `test-artifacts/`).
 */
import { ok, strictEqual } from "node:assert/strict";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { createTopics, produceTicks } from "./actor_harness.ts";
import { generateTicks } from "./expected.ts";
import { type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil } from "./support.ts";

const START_MS = Date.UTC(2026, 10, 20, 9, 0, 0);
const CHROMIUM = Deno.env.get("CHROMIUM") ?? "chromium";
const ARTIFACTS = Deno.env.get("TEST_ARTIFACTS_DIR") ??
  new URL("../test-artifacts/", import.meta.url).pathname;

/** Runs headless Chromium once with a fresh profile; returns its stdout. */
async function chromium(args: string[]): Promise<string> {
  const profile = await Deno.makeTempDir({ prefix: "dp-chromium-" });
  try {
    const out = await new Deno.Command(CHROMIUM, {
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        `--user-data-dir=${profile}`,
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(60_000),
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    if (out.code !== 0) {
      throw new Error(`chromium exited ${out.code}:\n${new TextDecoder().decode(out.stderr)}`);
    }
    return stdout;
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
}

/** The attributes of every `<tr>` of the table with this id, as the browser serialized it. */
function rowsOf(dom: string, tableId: string): Record<string, string>[] {
  const table = new RegExp(`<table id="${tableId}"[^>]*>([\\s\\S]*?)</table>`).exec(dom);
  if (!table) return [];
  return [...table[1]!.matchAll(/<tr([^>]*)>/g)].map((m) =>
    Object.fromEntries([...m[1]!.matchAll(/([\w-]+)="([^"]*)"/g)].map((a) => [a[1]!, a[2]!]))
  );
}

function textOf(dom: string, id: string): string | undefined {
  return new RegExp(`id="${id}"[^>]*>([^<]*)<`).exec(dom)?.[1];
}

async function partitions(node: NodeProcess) {
  return (await (await fetch(`${node.url}/partitions`)).json()) as {
    node_id: string;
    partitions: { topic: string; partition: number; processed_offset: number }[];
    live_actors: { instrument: number; curve: number };
    nodes: { node_id: string; partitions: unknown[] }[];
  };
}

Deno.test({
  name:
    "status page in headless Chromium: node id, owned partitions, live actors, hot keys, DLQ, replay job; no token",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      DATA_PROC_BAR_WINDOWS: "1m,1h",
      // Actors stay live for the whole test: the page must show all of them.
      DATA_PROC_ACTOR_IDLE_PASSIVATE_MS: "600000",
    });
    await createTopics(env);
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      const input = generateTicks({
        seed: 5,
        instruments: 12,
        count: 600,
        startMs: START_MS,
        spreadMs: 3_600_000,
        outOfOrderRatio: 0,
        duplicateRatio: 0,
      });
      await produceTicks(env, input);
      // One tick older than the clock minus the lateness: the actor stage sends it to the DLQ.
      const late: NormalizedTick = {
        ...input[0]!,
        event_id: "status-page-late",
        event_time_ms: START_MS - 60_000,
      };
      await produceTicks(env, [late]);

      const view = await pollUntil("every partition assigned and read to the end", async () => {
        const v = await partitions(node);
        const ticks = v.partitions.filter((p) => p.topic.endsWith("normalized.market.ticks.v1"));
        const applied = await (await fetch(`${node.url}/metrics`)).text();
        const lateSeen = /data_processing_dlq_records_total\{[^}]*reason="late_event"[^}]*\} 1/
          .test(applied);
        // The registry too (announced every 2 s): replay and the page read owners there.
        const announced = v.nodes.find((n) => n.node_id === v.node_id)?.partitions.length;
        return ticks.length === env.config.DATA_PROC_NORMALIZED_PARTITIONS &&
            announced === v.partitions.length && v.live_actors.instrument === 12 && lateSeen
          ? v
          : undefined;
      });

      const started = await fetch(`${node.url}/replay`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${env.env.DATA_PROC_ADMIN_TOKEN}`,
        },
        body: JSON.stringify({
          kind: "instrument",
          prefix: "INST-",
          dry_run: true,
          requested_by: "status-page-operator",
        }),
      });
      const accepted = await started.json() as { job_id: string };
      strictEqual(started.status, 202, JSON.stringify(accepted));
      let lastJob: unknown;
      await pollUntil("replay job done", async () => {
        const job = await (await fetch(`${node.url}/replay/${accepted.job_id}`, {
          headers: { authorization: `Bearer ${env.env.DATA_PROC_ADMIN_TOKEN}` },
        })).json();
        lastJob = job;
        if (job.status === "failed") throw new Error(`replay failed: ${JSON.stringify(job)}`);
        return job.status === "done" ? job : undefined;
      }).catch((err) => {
        throw new Error(`${err.message}; last seen: ${JSON.stringify(lastJob)}`);
      });

      const dom = await chromium(["--dump-dom", `${node.url}/`]);

      strictEqual(textOf(dom, "node-id"), view.node_id);
      strictEqual(textOf(dom, "env"), "test");
      strictEqual(textOf(dom, "ready"), "ready");
      ok(/<meta http-equiv="refresh" content="\d+">/.test(dom), "the page reloads itself");

      // Every partition the node owns, as a row naming it as the owner, and no other row
      // claims this node.
      const rows = rowsOf(dom, "partitions");
      const owned = view.partitions.map((p) => `${p.topic}/${p.partition}`).sort();
      const shown = rows.filter((r) => r["data-owner"] === view.node_id)
        .map((r) => `${r["data-topic"]}/${r["data-partition"]}`).sort();
      strictEqual(JSON.stringify(shown), JSON.stringify(owned));
      strictEqual(Number(textOf(dom, "partitions-here")), owned.length);

      strictEqual(Number(textOf(dom, "live-instrument")), 12);
      strictEqual(Number(textOf(dom, "live-curve")), 0);
      const instruments = new Set(input.map((t) => t.instrument_id));
      const hot = /<table id="hot-keys"[^>]*>[\s\S]*?<\/table>/.exec(dom)?.[0] ?? "";
      ok(
        [...instruments].some((id) => hot.includes(`<td>${id}</td>`)),
        `a generated instrument among the hot keys:\n${hot}`,
      );
      ok(
        /<td>aggregate<\/td><td>late_event<\/td><td class="num">1<\/td>/.test(dom),
        "the late tick counted in the DLQ table",
      );
      const job = rowsOf(dom, "replay-jobs").find((r) => r["data-job"] === accepted.job_id);
      ok(job, `replay job ${accepted.job_id} listed`);
      ok(new RegExp(`data-job="${accepted.job_id}"[\\s\\S]*?>done<[\\s\\S]*?100%`).test(dom));
      ok(!dom.includes(env.env.DATA_PROC_ADMIN_TOKEN!), "the admin token never appears");
      ok(!dom.includes("status-page-operator"), "job details stay behind the admin token");

      await Deno.mkdir(ARTIFACTS, { recursive: true });
      const shot = `${ARTIFACTS}/status_page.png`;
      await Deno.remove(shot).catch(() => {});
      await chromium(["--screenshot=" + shot, "--window-size=1280,1400", `${node.url}/`]);
      const png = await Deno.readFile(shot);
      ok(png.length > 10_000, `screenshot of ${png.length} bytes`);
      strictEqual(
        [...png.slice(0, 4)].join(","),
        "137,80,78,71",
        "the screenshot is a PNG",
      );
    } finally {
      await node.kill("SIGTERM");
      await env.cleanup();
    }
  },
});
