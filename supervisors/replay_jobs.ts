/**
 * Replay jobs across nodes: the node that receives `POST /replay` records the job in Redis
 * and asks every node owning partitions of the kind to replay its share; each node writes
 * its own progress into the job, so any node can answer `GET /replay/{id}`.
 */
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { recordAudit } from "../stores/audit_log.ts";
import type { Sql } from "../stores/postgres.ts";
import type { Redis } from "../stores/redis.ts";
import type { RedisKeys } from "../stores/redis_keys.ts";
import { type ReplayDeps, type ReplayDifference, replayOnNode, type ReplaySpec } from "./replay.ts";

export type NodeJobStatus = "pending" | "running" | "done" | "failed";

export interface NodeJobState {
  node_id: string;
  status: NodeJobStatus;
  partitions?: number[];
  keys?: string[];
  events?: number;
  differences?: ReplayDifference[];
  progress?: { partitions_done: number; partitions: number; events: number };
  error?: string;
  updated_at_ms: number;
}

export interface ReplayJobView {
  job_id: string;
  status: NodeJobStatus;
  spec: ReplaySpec;
  requested_by: string;
  created_at_ms: number;
  nodes: NodeJobState[];
  keys: string[];
  events: number;
  differences?: ReplayDifference[];
}

const TTL_SECONDS = 7 * 24 * 3600;
/** Job ids kept in the recent-jobs index (older ones drop out; the jobs themselves expire). */
const INDEX_SIZE = 100;

export class ReplayJobs {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;

  constructor(redis: Redis, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  async create(
    id: string,
    spec: ReplaySpec,
    requestedBy: string,
    nodeIds: string[],
  ): Promise<void> {
    const key = this.#keys.replayJob(id);
    const now = Date.now();
    const fields: Record<string, string> = {
      spec: JSON.stringify(spec),
      requested_by: requestedBy,
      created_at_ms: String(now),
    };
    for (const nodeId of nodeIds) {
      fields[`node:${nodeId}`] = JSON.stringify(
        { node_id: nodeId, status: "pending", updated_at_ms: now } satisfies NodeJobState,
      );
    }
    const index = this.#keys.replayJobIndex();
    await this.#redis.multi().hset(key, fields).expire(key, TTL_SECONDS)
      .zadd(index, now, id).zremrangebyrank(index, 0, -INDEX_SIZE - 1).expire(index, TTL_SECONDS)
      .exec();
  }

  /** The `limit` most recently created jobs still stored, newest first. */
  async recent(limit: number): Promise<ReplayJobView[]> {
    const ids = await this.#redis.zrevrange(this.#keys.replayJobIndex(), 0, limit - 1);
    const views = await Promise.all(ids.map((id) => this.get(id)));
    return views.filter((v): v is ReplayJobView => v !== undefined);
  }

  async update(id: string, state: NodeJobState): Promise<void> {
    await this.#redis.hset(
      this.#keys.replayJob(id),
      `node:${state.node_id}`,
      JSON.stringify(state),
    );
  }

  async get(id: string): Promise<ReplayJobView | undefined> {
    const raw = await this.#redis.hgetall(this.#keys.replayJob(id));
    if (!raw.spec) return undefined;
    const nodes = Object.entries(raw).filter(([f]) => f.startsWith("node:")).map(([, v]) =>
      JSON.parse(v) as NodeJobState
    );
    const spec = JSON.parse(raw.spec) as ReplaySpec;
    const statuses = nodes.map((n) => n.status);
    const status: NodeJobStatus = statuses.includes("failed")
      ? "failed"
      : statuses.every((s) => s === "done")
      ? "done"
      : statuses.some((s) => s !== "pending")
      ? "running"
      : "pending";
    const view: ReplayJobView = {
      job_id: id,
      status,
      spec,
      requested_by: raw.requested_by ?? "",
      created_at_ms: Number(raw.created_at_ms),
      nodes,
      keys: [...new Set(nodes.flatMap((n) => n.keys ?? []))].sort(),
      events: nodes.reduce((sum, n) => sum + (n.events ?? 0), 0),
    };
    if (spec.dryRun) view.differences = nodes.flatMap((n) => n.differences ?? []);
    return view;
  }
}

export interface ReplayRunnerDeps {
  nodeId: string;
  jobs: ReplayJobs;
  sql: Sql;
  logger: Logger;
  /** What a replay needs on this node; throws when the actor stage is not running. */
  replayDeps: () => Omit<ReplayDeps, "logger" | "onProgress">;
}

/** Runs this node's shares of replay jobs in the background, reporting into each job. */
export class ReplayRunner {
  readonly #d: ReplayRunnerDeps;
  readonly #running = new Set<Promise<void>>();

  constructor(deps: ReplayRunnerDeps) {
    this.#d = deps;
  }

  start(jobId: string, spec: ReplaySpec): void {
    const run = this.#run(jobId, spec);
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
  }

  /** Resolves when every running share has finished (node shutdown waits for it). */
  async settled(): Promise<void> {
    await Promise.all(this.#running);
  }

  async #report(jobId: string, state: Omit<NodeJobState, "node_id" | "updated_at_ms">) {
    try {
      await this.#d.jobs.update(jobId, {
        node_id: this.#d.nodeId,
        updated_at_ms: Date.now(),
        ...state,
      });
    } catch (err) {
      this.#d.logger.error("cannot record replay progress", { job_id: jobId, err });
    }
  }

  async #audit(jobId: string, spec: ReplaySpec, outcome: string, details: Record<string, unknown>) {
    try {
      await recordAudit(this.#d.sql, {
        actor: `node:${this.#d.nodeId}`,
        action: "replay.complete",
        target: { job_id: jobId, ...spec },
        outcome,
        details,
      });
    } catch (err) {
      this.#d.logger.error("cannot audit replay", { job_id: jobId, outcome, err });
    }
  }

  async #run(jobId: string, spec: ReplaySpec): Promise<void> {
    try {
      const deps = this.#d.replayDeps();
      await this.#report(jobId, { status: "running" });
      const result = await replayOnNode({
        ...deps,
        logger: this.#d.logger.child("job", { job_id: jobId }),
        onProgress: (p) =>
          void this.#report(jobId, {
            status: "running",
            progress: {
              partitions_done: p.partitionsDone,
              partitions: p.partitions,
              events: p.events,
            },
          }),
      }, spec);
      await this.#report(jobId, {
        status: "done",
        partitions: result.partitions,
        keys: result.keys,
        events: result.events,
        differences: result.differences,
      });
      metrics.replayJobs.labels("done").inc();
      await this.#audit(jobId, spec, "done", {
        keys: result.keys.length,
        events: result.events,
        differences: result.differences.length,
      });
    } catch (err) {
      this.#d.logger.error("replay failed", { job_id: jobId, err });
      metrics.replayJobs.labels("failed").inc();
      await this.#report(jobId, { status: "failed", error: (err as Error).message });
      await this.#audit(jobId, spec, "failed", { error: (err as Error).message });
    }
  }
}
