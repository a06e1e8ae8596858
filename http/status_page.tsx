/**
 * `GET /`: a status page for people, server-rendered with Hono JSX (every value escaped), no
 * script, reloading itself every few seconds. Public like `GET /partitions`: it shows only
 * what the read endpoints already show, never configuration or the admin token.
 */
import type { Hono } from "hono";
import type { FC } from "hono/jsx";
import {
  collectStatus,
  type PartitionRow,
  type StatusDeps,
  type StatusSnapshot,
} from "./status_data.ts";

export type { StatusDeps } from "./status_data.ts";

export const REFRESH_SECONDS = 5;

const STYLE = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #1d2330; background: #fafbfc; }
h1 { font-size: 1.3rem; margin: 0 0 .25rem; } h2 { font-size: 1.05rem; margin: 1.5rem 0 .4rem; }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid #d8dde6; padding: .2rem .55rem; text-align: left; }
th { background: #eef1f5; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: #11702f; font-weight: 600; } .bad { color: #b3261e; font-weight: 600; }
.muted { color: #667085; } .here { background: #f2f8ff; }
.cards { display: flex; gap: .75rem; flex-wrap: wrap; }
.card { background: #fff; border: 1px solid #d8dde6; padding: .5rem .8rem; min-width: 9rem; }
.card b { display: block; font-size: 1.3rem; }
progress { width: 8rem; vertical-align: middle; }
`;

function duration(ms: number | null): string {
  if (ms === null) return "-";
  const abs = Math.abs(ms);
  const sign = ms < 0 ? "-" : "";
  if (abs < 1000) return `${sign}${Math.round(abs)} ms`;
  if (abs < 120_000) return `${sign}${(abs / 1000).toFixed(1)} s`;
  if (abs < 7_200_000) return `${sign}${Math.round(abs / 60_000)} min`;
  return `${sign}${(abs / 3_600_000).toFixed(1)} h`;
}

function time(ms: number | null): string {
  return ms === null ? "-" : new Date(ms).toISOString().replace(".000Z", "Z");
}

function shortTopic(topic: string): string {
  return topic.replace(/^.*normalized\./, "normalized.");
}

const Unavailable: FC<{ error: string }> = ({ error }) => <p class="bad">unavailable: {error}</p>;

const Readiness: FC<{ s: StatusSnapshot }> = ({ s }) => (
  <table id="readiness">
    <tr>
      <th>part</th>
      <th>state</th>
    </tr>
    {Object.entries(s.readiness.parts).map(([name, part]) => (
      <tr>
        <td>{name}</td>
        <td class={part.ok ? "ok" : "bad"}>{part.ok ? "ok" : `failing: ${part.error ?? ""}`}</td>
      </tr>
    ))}
  </table>
);

const PartitionTable: FC<{ s: StatusSnapshot }> = ({ s }) => (
  <>
    <table id="partitions">
      <tr>
        <th>topic</th>
        <th>partition</th>
        <th>owner</th>
        <th>lag (records)</th>
        <th>watermark lag</th>
        <th>event-time clock</th>
        <th>live actors</th>
        <th>processed offset</th>
      </tr>
      {s.partitions.rows.map((row: PartitionRow) => (
        <tr
          class={row.local ? "here" : undefined}
          data-topic={row.topic}
          data-partition={String(row.partition)}
          data-owner={row.owner ?? ""}
        >
          <td>{shortTopic(row.topic)}</td>
          <td class="num">{row.partition}</td>
          <td>{row.owner ?? "-"}</td>
          <td class="num">{row.local ? (row.local.lag ?? "-") : ""}</td>
          <td class="num">{row.local ? duration(row.local.watermark_lag_ms) : ""}</td>
          <td>{row.local ? time(row.local.clock_ms) : ""}</td>
          <td class="num live-actors">{row.local ? row.local.live_actors : ""}</td>
          <td class="num">{row.local ? row.local.processed_offset : ""}</td>
        </tr>
      ))}
    </table>
    {s.partitions.total > s.partitions.rows.length
      ? <p class="muted">{s.partitions.total - s.partitions.rows.length} more not shown</p>
      : null}
    {s.partitions.rows.length === 0 ? <p class="muted">no partitions assigned yet</p> : null}
    {!s.nodes.ok ? <p class="bad">other nodes' partitions unknown: {s.nodes.error}</p> : null}
  </>
);

const Nodes: FC<{ s: StatusSnapshot }> = ({ s }) =>
  s.nodes.ok
    ? (
      <table id="nodes">
        <tr>
          <th>node</th>
          <th>address</th>
          <th>partitions</th>
        </tr>
        {s.nodes.value.rows.map((n) => (
          <tr class={n.node_id === s.node_id ? "here" : undefined}>
            <td>{n.node_id}</td>
            <td>{n.url}</td>
            <td class="num">{n.partitions}</td>
          </tr>
        ))}
      </table>
    )
    : <Unavailable error={s.nodes.error} />;

const HotKeyTable: FC<{ s: StatusSnapshot }> = ({ s }) =>
  s.hot_keys.length === 0 ? <p class="muted">no recent events</p> : (
    <table id="hot-keys">
      <tr>
        <th>kind</th>
        <th>key</th>
        <th>events/s</th>
      </tr>
      {s.hot_keys.map((h) => (
        <tr>
          <td>{h.kind}</td>
          <td>{h.key}</td>
          <td class="num">
            {h.rate_per_s.toFixed(2)}
            {h.error_per_s > 0 ? ` (±${h.error_per_s.toFixed(2)})` : ""}
          </td>
        </tr>
      ))}
    </table>
  );

const DlqTable: FC<{ s: StatusSnapshot }> = ({ s }) =>
  s.dlq.length === 0 ? <p class="muted">none since this node started</p> : (
    <table id="dlq">
      <tr>
        <th>stage</th>
        <th>reason</th>
        <th>records</th>
      </tr>
      {s.dlq.map((d) => (
        <tr>
          <td>{d.stage}</td>
          <td>{d.reason}</td>
          <td class="num">{d.count}</td>
        </tr>
      ))}
    </table>
  );

const ReplayTable: FC<{ s: StatusSnapshot }> = ({ s }) => {
  if (!s.replay_jobs.ok) return <Unavailable error={s.replay_jobs.error} />;
  if (s.replay_jobs.value.length === 0) return <p class="muted">no recent replay jobs</p>;
  return (
    <table id="replay-jobs">
      <tr>
        <th>job</th>
        <th>kind</th>
        <th>created</th>
        <th>status</th>
        <th>progress</th>
        <th>nodes</th>
      </tr>
      {s.replay_jobs.value.map((job) => (
        <tr data-job={job.job_id}>
          <td>{job.job_id}</td>
          <td>{job.kind}{job.dry_run ? " (dry run)" : ""}</td>
          <td>{time(job.created_at_ms)}</td>
          <td class={job.status === "failed" ? "bad" : job.status === "done" ? "ok" : undefined}>
            {job.status}
          </td>
          <td>
            <progress value={job.percent} max={100} /> {job.percent}%, {job.events} events
            {job.eta_ms ? `, about ${Math.ceil(job.eta_ms / 1000)} s left` : ""}
          </td>
          <td>
            {job.nodes.map((n) => (
              <div>
                {n.node_id}: {n.status}
                {n.percent !== null && n.status !== "done" ? ` ${n.percent}%` : ""}
              </div>
            ))}
          </td>
        </tr>
      ))}
    </table>
  );
};

export const StatusPage: FC<{ s: StatusSnapshot }> = ({ s }) => (
  <html lang="en">
    <head>
      <meta charset="utf-8" />
      <meta http-equiv="refresh" content={String(REFRESH_SECONDS)} />
      <title>{`${s.node_id} · data processing`}</title>
      <style>{STYLE}</style>
    </head>
    <body>
      <h1>
        Data processing node <span id="node-id">{s.node_id}</span>
      </h1>
      <p class="muted">
        env <span id="env">{s.env}</span> · {time(s.generated_at_ms)} · reloads every{" "}
        {REFRESH_SECONDS} s · JSON: <a href="/partitions">/partitions</a>,{" "}
        <a href="/hot-keys">/hot-keys</a>, <a href="/ready">/ready</a>,{" "}
        <a href="/metrics">/metrics</a>
      </p>
      <div class="cards">
        <div class="card">
          readiness{" "}
          <b id="ready" class={s.readiness.ready ? "ok" : "bad"}>
            {s.readiness.ready ? "ready" : "not ready"}
          </b>
        </div>
        <div class="card">
          live instrument actors <b id="live-instrument">{s.live_actors.instrument}</b>
        </div>
        <div class="card">
          live curve actors <b id="live-curve">{s.live_actors.curve}</b>
        </div>
        <div class="card">
          partitions here{" "}
          <b id="partitions-here">{s.partitions.rows.filter((r) => r.local).length}</b>
        </div>
      </div>
      <h2>Readiness</h2>
      <Readiness s={s} />
      <h2>Partitions</h2>
      <PartitionTable s={s} />
      <h2>Nodes</h2>
      <Nodes s={s} />
      <h2>Hot keys (this node)</h2>
      <HotKeyTable s={s} />
      <h2>DLQ records by reason (this node, since start)</h2>
      <DlqTable s={s} />
      <h2>Replay jobs</h2>
      <p class="muted">keys, differences and who asked: GET /replay/:id with the admin token</p>
      <ReplayTable s={s} />
    </body>
  </html>
);

export function statusPage(deps: StatusDeps) {
  return (app: Hono) => {
    app.get("/", async (c) => {
      const snapshot = await collectStatus(deps);
      c.header("cache-control", "no-store");
      // No script runs here; styles are inline; the page may not be framed.
      c.header(
        "content-security-policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
      );
      return c.html("<!doctype html>" + <StatusPage s={snapshot} />);
    });
  };
}
