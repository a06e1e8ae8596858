/**
 * What the status page (`GET /`) shows, gathered from what the node already holds: its
 * readiness parts, the node registry (partition owners), its own partitions (lag, clock,
 * live actors), the hot-key tracker, the DLQ counter and the recent replay jobs. Every list
 * is bounded, and a part that cannot be read (Redis down) is reported as unavailable
 * instead of failing the page: an outage is when the page is needed most.
 */
import { KIND_NAMES } from "../actors/kinds/registry.ts";
import type { HotKey, HotKeys } from "../observability/hot_keys.ts";
import { metrics } from "../observability/metrics.ts";
import type { ActorService, PartitionView } from "../supervisors/actor_service.ts";
import type { NodeRecord } from "../messages/node_record.ts";
import type { NodeRegistry } from "../supervisors/node_registry.ts";
import type { JobStatus, ReplayJobs, ReplayJobView } from "../supervisors/replay_jobs.ts";
import type { ReadinessReport } from "./app.ts";

export interface StatusDeps {
  nodeId: string;
  env: string;
  readiness: () => Promise<ReadinessReport>;
  nodes: Pick<NodeRegistry, "list">;
  hotKeys: Pick<HotKeys, "top">;
  jobs: Pick<ReplayJobs, "recent">;
  actors: Pick<ActorService, "partitionViews">;
}

/** Rows shown at most per section (the page is cheap to render and to refresh). */
export const STATUS_LIMITS = { partitions: 256, nodes: 50, hotKeys: 10, dlq: 50, replayJobs: 10 };
/** A slow store must not hold the page: each Redis read gets this long. */
const READ_TIMEOUT_MS = 2000;

/** One partition of the cluster: its owner from the registry, its figures when owned here. */
export interface PartitionRow {
  topic: string;
  partition: number;
  owner: string | null;
  local?: PartitionView;
}

export type Part<T> = { ok: true; value: T } | { ok: false; error: string };

/**
 * A replay job as the public page may show it. Replay routes need the admin token, so the
 * page leaves out what only they show: key ranges, keys, differences, who asked, errors.
 */
export interface ReplayJobSummary {
  job_id: string;
  kind: string;
  dry_run: boolean;
  status: JobStatus;
  created_at_ms: number;
  percent: number;
  eta_ms: number | null;
  events: number;
  nodes: { node_id: string; status: JobStatus; percent: number | null }[];
}

export function summarizeJob(job: ReplayJobView): ReplayJobSummary {
  return {
    job_id: job.job_id,
    kind: job.spec.kind,
    dry_run: job.spec.dryRun,
    status: job.status,
    created_at_ms: job.created_at_ms,
    percent: job.progress.percent,
    eta_ms: job.progress.eta_ms,
    events: job.events,
    nodes: job.nodes.map((n) => ({
      node_id: n.node_id,
      status: n.status,
      percent: n.status === "done" ? 100 : n.progress?.percent ?? null,
    })),
  };
}

export interface StatusSnapshot {
  node_id: string;
  env: string;
  generated_at_ms: number;
  readiness: ReadinessReport;
  /** This node's partitions, plus other nodes' ones when the registry could be read. */
  partitions: { rows: PartitionRow[]; total: number };
  nodes: Part<{ rows: { node_id: string; url: string; partitions: number }[]; total: number }>;
  live_actors: Record<string, number>;
  hot_keys: HotKey[];
  dlq: { stage: string; reason: string; count: number }[];
  replay_jobs: Part<ReplayJobSummary[]>;
}

async function read<T>(what: string, probe: () => Promise<T>): Promise<Part<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not answer within ${READ_TIMEOUT_MS} ms`)),
      READ_TIMEOUT_MS,
    );
  });
  try {
    return { ok: true, value: await Promise.race([probe(), timeout]) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

/** Every partition the registry knows plus this node's own, sorted by topic and number. */
export function partitionRows(
  nodeId: string,
  local: PartitionView[],
  nodes: NodeRecord[],
): PartitionRow[] {
  const rows = new Map<string, PartitionRow>();
  const id = (topic: string, partition: number) => `${topic}\u0000${partition}`;
  for (const n of nodes) {
    for (const p of n.partitions) {
      rows.set(id(p.topic, p.partition), {
        topic: p.topic,
        partition: p.partition,
        owner: n.node_id,
      });
    }
  }
  // This node's own view wins: the registry entry is refreshed only every few seconds.
  for (const view of local) {
    rows.set(id(view.topic, view.partition), {
      topic: view.topic,
      partition: view.partition,
      owner: nodeId,
      local: view,
    });
  }
  return [...rows.values()].sort((a, b) =>
    a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : a.partition - b.partition
  );
}

async function dlqCounts(): Promise<StatusSnapshot["dlq"]> {
  const { values } = await metrics.dlq.get();
  return values
    .filter((v) => v.value > 0)
    .map((v) => ({
      stage: String(v.labels.stage ?? ""),
      reason: String(v.labels.reason ?? ""),
      count: v.value,
    }))
    .sort((a, b) => b.count - a.count || (a.reason < b.reason ? -1 : 1))
    .slice(0, STATUS_LIMITS.dlq);
}

export async function collectStatus(deps: StatusDeps): Promise<StatusSnapshot> {
  const local = deps.actors.partitionViews();
  const [readiness, { nodes, jobs }, dlq] = await Promise.all([
    deps.readiness(),
    (async () => {
      const nodesRead = read("node registry", () => deps.nodes.list());
      // A share whose node left the group shows as failed, as GET /replay/{id} shows it.
      // Both reads start now, so the page waits for one timeout at most.
      const jobsRead = read("replay jobs", async () => {
        const nodes = await nodesRead;
        const live = nodes.ok ? new Set(nodes.value.map((n) => n.node_id)) : undefined;
        return (await deps.jobs.recent(STATUS_LIMITS.replayJobs, live)).map(summarizeJob);
      });
      return { nodes: await nodesRead, jobs: await jobsRead };
    })(),
    dlqCounts(),
  ]);
  // Every kind, zero when none of its actors lives here.
  const liveActors: Record<string, number> = Object.fromEntries(KIND_NAMES.map((k) => [k, 0]));
  for (const p of local) liveActors[p.kind] = (liveActors[p.kind] ?? 0) + p.live_actors;
  const all = partitionRows(deps.nodeId, local, nodes.ok ? nodes.value : []);
  return {
    node_id: deps.nodeId,
    env: deps.env,
    generated_at_ms: Date.now(),
    readiness,
    partitions: { rows: all.slice(0, STATUS_LIMITS.partitions), total: all.length },
    nodes: nodes.ok
      ? {
        ok: true,
        value: {
          rows: [...nodes.value]
            .sort((a, b) => (a.node_id < b.node_id ? -1 : 1))
            .slice(0, STATUS_LIMITS.nodes)
            .map((n) => ({ node_id: n.node_id, url: n.url, partitions: n.partitions.length })),
          total: nodes.value.length,
        },
      }
      : nodes,
    live_actors: liveActors,
    hot_keys: deps.hotKeys.top(STATUS_LIMITS.hotKeys),
    dlq,
    replay_jobs: jobs,
  };
}
