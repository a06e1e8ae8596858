import { ok, strictEqual } from "node:assert/strict";
import { Hono } from "hono";
import type { PartitionView } from "../supervisors/actor_consumer.ts";
import type { ReplayJobView } from "../supervisors/replay_jobs.ts";
import { STATUS_LIMITS, type StatusDeps } from "./status_data.ts";
import { statusPage } from "./status_page.tsx";

function view(partition: number, liveActors: number): PartitionView {
  return {
    topic: "t1.normalized.market.ticks.v1",
    partition,
    kind: "instrument",
    epoch: 1,
    processed_offset: 10,
    live_actors: liveActors,
    lag: 3,
    clock_ms: Date.UTC(2026, 0, 1),
    quiet_ms: null,
    watermark_lag_ms: 1500,
    pending_close_keys: 0,
    sources: [],
  };
}

const job: ReplayJobView = {
  job_id: "0b6a3c8e-3f0e-4b7e-9a51-2f1d0c9e8a77",
  status: "running",
  spec: { kind: "instrument", prefix: "SECRET-RANGE-", fromTimeMs: 0, dryRun: false },
  requested_by: "admin for alice",
  created_at_ms: 0,
  progress: { percent: 40, eta_ms: 3000 },
  nodes: [{ node_id: "n1", status: "running", updated_at_ms: 0, error: "boom at key K1" }],
  keys: ["K1"],
  events: 7,
};

function deps(overrides: Partial<StatusDeps> = {}): StatusDeps {
  return {
    nodeId: "n1",
    env: "test",
    readiness: () => Promise.resolve({ ready: true, parts: { redis: { ok: true } } }),
    nodes: { list: () => Promise.resolve([]) },
    hotKeys: {
      top: (limit) =>
        [{ kind: "instrument", key: "<script>alert(1)</script>", rate_per_s: 2, error_per_s: 0 }]
          .slice(0, limit),
    },
    jobs: { recent: () => Promise.resolve([job]) },
    actors: { partitionViews: () => [view(0, 4), view(1, 5)] },
    ...overrides,
  };
}

async function page(d: StatusDeps): Promise<{ status: number; html: string; headers: Headers }> {
  const app = new Hono();
  statusPage(d)(app);
  const res = await app.request("/");
  return { status: res.status, html: await res.text(), headers: res.headers };
}

Deno.test("status page: escapes values, sums live actors, keeps replay details out", async () => {
  const { status, html, headers } = await page(deps());
  strictEqual(status, 200);
  ok(html.startsWith("<!doctype html>"));
  strictEqual(headers.get("cache-control"), "no-store");
  ok(headers.get("content-security-policy")?.includes("default-src 'none'"));
  ok(!html.includes("<script>"), "a key is text, never markup");
  ok(html.includes("&lt;script&gt;alert(1)&lt;/script&gt;"));
  ok(html.includes('<b id="live-instrument">9</b>'));
  ok(html.includes('data-partition="1" data-owner="n1"'));
  ok(html.includes(`data-job="${job.job_id}"`));
  ok(html.includes("40%"));
  for (const secret of ["SECRET-RANGE-", "alice", "boom at key"]) {
    ok(!html.includes(secret), `${secret} is shown only behind the admin token`);
  }
});

Deno.test("status page: a store that does not answer leaves the rest of the page", async () => {
  const never = () => new Promise<never>(() => {});
  const started = Date.now();
  const { status, html } = await page(deps({ nodes: { list: never }, jobs: { recent: never } }));
  strictEqual(status, 200);
  ok(Date.now() - started < 3000, "one read timeout at most");
  ok(html.includes("partitions unknown: node registry did not answer"));
  ok(html.includes("unavailable: replay jobs did not answer"));
  ok(html.includes('data-partition="0" data-owner="n1"'), "this node's partitions still shown");
});

Deno.test("status page: lists are bounded", async () => {
  const many = Array.from({ length: STATUS_LIMITS.partitions + 44 }, (_, i) => view(i, 1));
  const { html } = await page(deps({ actors: { partitionViews: () => many } }));
  strictEqual(html.match(/<tr[^>]*data-partition=/g)?.length, STATUS_LIMITS.partitions);
  ok(html.includes("44 more not shown"));
});
