/**
 * Replay jobs across nodes. The node that receives `POST /replay` records the job in Redis,
 * with one share per node owning partitions of the kind, and puts the job id in each other
 * node's inbox; every node takes its shares from its inbox (no node calls another, so no
 * credential travels) and writes its own progress into the job, so any node can answer
 * `GET /replay/{id}`. Jobs over overlapping key ranges of a kind never run at once, and a
 * share whose node left the group counts as failed, so the job can be retried.
 */
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { recordAudit } from "../stores/audit_log.ts";
import type { Sql } from "../stores/postgres.ts";
import type { Redis } from "../stores/redis.ts";
import type { RedisKeys } from "../stores/redis_keys.ts";
import { HoldConflictError } from "./partition_supervisor.ts";
import {
  PartitionsMovedError,
  type ReplayDeps,
  type ReplayDifference,
  replayOnNode,
} from "./replay.ts";
import { overlaps, type ReplayProgress, type ReplaySpec } from "./replay_spec.ts";
import { jitteredBackoffMs } from "../timing/backoff.ts";
import { sleep } from "../timing/sleep.ts";

export type JobStatus = "pending" | "running" | "done" | "failed" | "cancelled";

export interface NodeProgress {
  records_read: number;
  records_total: number;
  events: number;
  keys: number;
  percent: number;
  /** Estimated time left from the read rate so far (null until it can be told). */
  eta_ms: number | null;
}

export interface NodeJobState {
  node_id: string;
  status: JobStatus;
  attempt?: number;
  started_at_ms?: number;
  partitions?: number[];
  keys?: string[];
  events?: number;
  differences?: ReplayDifference[];
  progress?: NodeProgress;
  error?: string;
  updated_at_ms: number;
}

export interface ReplayJobView {
  job_id: string;
  status: JobStatus;
  spec: ReplaySpec;
  requested_by: string;
  created_at_ms: number;
  cancel_requested_by?: string;
  /** Over every share: records read of the records to read, and the longest ETA. */
  progress: { percent: number; eta_ms: number | null };
  nodes: NodeJobState[];
  keys: string[];
  events: number;
  differences?: ReplayDifference[];
}

const TTL_SECONDS = 7 * 24 * 3600;
/** Job ids kept in the recent-jobs index (older ones drop out; the jobs themselves expire). */
const INDEX_SIZE = 100;
/** Jobs checked for an overlap (a running job is always among the most recent ones). */
const OVERLAP_WINDOW = 50;
const FINISHED: readonly JobStatus[] = ["done", "failed", "cancelled"];

export class ReplayConflict extends Error {
  constructor(readonly running: ReplayJobView) {
    super(`replay job ${running.job_id} (${running.status}) covers an overlapping key range`);
    this.name = "ReplayConflict";
  }
}

export class ReplayJobs {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;

  constructor(redis: Redis, keys: RedisKeys) {
    this.#redis = redis;
    this.#keys = keys;
  }

  /**
   * Records a new job with a pending share for each node and puts it in their inboxes,
   * unless a job over an overlapping key range of the kind is still pending or running
   * (throws ReplayConflict naming it). `liveNodes` are the nodes in the group now.
   */
  async create(
    spec: ReplaySpec,
    requestedBy: string,
    nodeIds: string[],
    liveNodes: ReadonlySet<string>,
  ): Promise<string> {
    const lock = this.#keys.replayLock(spec.kind);
    const token = crypto.randomUUID();
    // One creation per kind at a time, so two overlapping requests cannot both pass.
    for (
      let attempt = 1;
      (await this.#redis.set(lock, token, "PX", 10_000, "NX")) !== "OK";
      attempt++
    ) {
      if (attempt > 50) throw new Error("replay job creation is busy; retry");
      await sleep(jitteredBackoffMs(attempt, { baseMs: 20, capMs: 200 }));
    }
    try {
      for (const job of await this.recent(OVERLAP_WINDOW, liveNodes)) {
        if (!FINISHED.includes(job.status) && overlaps(job.spec, spec)) {
          throw new ReplayConflict(job);
        }
      }
      const id = crypto.randomUUID();
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
      const tx = this.#redis.multi().hset(key, fields).expire(key, TTL_SECONDS)
        .zadd(index, now, id).zremrangebyrank(index, 0, -INDEX_SIZE - 1)
        .expire(index, TTL_SECONDS);
      for (const nodeId of nodeIds) {
        tx.lpush(this.#keys.replayInbox(nodeId), id).expire(this.#keys.replayInbox(nodeId), 3600);
      }
      await tx.exec();
      return id;
    } finally {
      // Only our own lock (it may have expired and been taken by another request).
      await this.#redis.eval(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
        1,
        lock,
        token,
      );
    }
  }

  /** The next job id in a node's inbox, if any. */
  async nextFor(nodeId: string): Promise<string | null> {
    return await this.#redis.rpop(this.#keys.replayInbox(nodeId));
  }

  async update(id: string, state: NodeJobState): Promise<void> {
    await this.#redis.hset(
      this.#keys.replayJob(id),
      `node:${state.node_id}`,
      JSON.stringify(state),
    );
  }

  /** Asks every share of a job to stop; false when there is no such job. */
  async cancel(id: string, by: string): Promise<boolean> {
    const key = this.#keys.replayJob(id);
    if (!(await this.#redis.hexists(key, "spec"))) return false;
    await this.#redis.hset(key, "cancel_requested_by", by);
    return true;
  }

  async cancelRequested(id: string): Promise<boolean> {
    return (await this.#redis.hexists(this.#keys.replayJob(id), "cancel_requested_by")) === 1;
  }

  /**
   * A job's view. With `liveNodes`, a share still pending or running on a node that is no
   * longer in the group is shown as failed (its node died; the job can be retried).
   */
  async get(id: string, liveNodes?: ReadonlySet<string>): Promise<ReplayJobView | undefined> {
    const raw = await this.#redis.hgetall(this.#keys.replayJob(id));
    if (!raw.spec) return undefined;
    const nodes = Object.entries(raw).filter(([f]) => f.startsWith("node:")).map(([, v]) => {
      const state = JSON.parse(v) as NodeJobState;
      if (liveNodes && !FINISHED.includes(state.status) && !liveNodes.has(state.node_id)) {
        return { ...state, status: "failed" as const, error: "its node left the group" };
      }
      return state;
    });
    const spec = JSON.parse(raw.spec) as ReplaySpec;
    const statuses = nodes.map((n) => n.status);
    const status: JobStatus = statuses.includes("failed")
      ? "failed"
      : statuses.includes("cancelled")
      ? "cancelled"
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
      ...(raw.cancel_requested_by ? { cancel_requested_by: raw.cancel_requested_by } : {}),
      progress: overallProgress(nodes),
      nodes,
      keys: [...new Set(nodes.flatMap((n) => n.keys ?? []))].sort(),
      events: nodes.reduce((sum, n) => sum + (n.events ?? n.progress?.events ?? 0), 0),
    };
    if (spec.dryRun) view.differences = nodes.flatMap((n) => n.differences ?? []);
    return view;
  }

  /** The `limit` most recently created jobs still stored, newest first. */
  async recent(limit: number, liveNodes?: ReadonlySet<string>): Promise<ReplayJobView[]> {
    const ids = await this.#redis.zrevrange(this.#keys.replayJobIndex(), 0, limit - 1);
    const views = await Promise.all(ids.map((id) => this.get(id, liveNodes)));
    return views.filter((v): v is ReplayJobView => v !== undefined);
  }
}

/**
 * A job's progress over its shares: the mean of each share's fraction read (a done share
 * counts whole, one not started yet as nothing), so it never goes back when a share ends or
 * reports its size late; the ETA is the slowest share's.
 */
export function overallProgress(nodes: NodeJobState[]): ReplayJobView["progress"] {
  if (nodes.length > 0 && nodes.every((n) => n.status === "done")) {
    return { percent: 100, eta_ms: 0 };
  }
  let fractions = 0;
  let eta: number | null = 0;
  for (const n of nodes) {
    if (n.status === "done") {
      fractions += 1;
      continue;
    }
    if (!n.progress) {
      eta = null;
      continue;
    }
    const { records_read: read, records_total: total } = n.progress;
    fractions += total === 0 ? 1 : Math.min(1, read / total);
    eta = eta === null || n.progress.eta_ms === null ? null : Math.max(eta, n.progress.eta_ms);
  }
  const percent = nodes.length === 0 ? 0 : Math.floor((1000 * fractions) / nodes.length) / 10;
  return { percent, eta_ms: eta };
}

export interface ReplayRunnerDeps {
  nodeId: string;
  jobs: ReplayJobs;
  sql: Sql;
  logger: Logger;
  /** What a replay needs on this node; throws when the actor stage is not running. */
  replayDeps: () => Omit<ReplayDeps, "logger" | "onProgress" | "signal">;
  /** Attempts for a share that fails (a store error, a partition that moved meanwhile). */
  attempts?: number;
  /** How often the inbox and cancel requests are checked. */
  pollMs?: number;
}

/**
 * Runs this node's shares of replay jobs, one at a time (a partition holds for one replay
 * only), reporting into each job; takes shares from its inbox and retries a failed share.
 */
export class ReplayRunner {
  readonly #d: ReplayRunnerDeps;
  #queue: Promise<void> = Promise.resolve();
  readonly #running = new Set<Promise<void>>();
  readonly #abort = new AbortController();
  #inboxLoop: Promise<void> | null = null;

  constructor(deps: ReplayRunnerDeps) {
    this.#d = deps;
  }

  /** Starts taking shares from this node's inbox. */
  listen(): void {
    this.#inboxLoop ??= (async () => {
      const signal = this.#abort.signal;
      while (!signal.aborted) {
        try {
          const id = await this.#d.jobs.nextFor(this.#d.nodeId);
          if (id !== null) {
            const job = await this.#d.jobs.get(id);
            if (job) this.start(id, job.spec);
            continue;
          }
        } catch (err) {
          this.#d.logger.warn("cannot read the replay inbox", { err });
        }
        await sleep(this.#d.pollMs ?? 250, signal);
      }
    })();
  }

  /** Queues this node's share of a job (taken from its inbox, so each share runs once). */
  start(jobId: string, spec: ReplaySpec): void {
    const run = this.#queue.then(() => this.#run(jobId, spec));
    this.#queue = run;
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
  }

  /** Stops taking shares and resolves when the running ones have finished (node shutdown). */
  async settled(): Promise<void> {
    this.#abort.abort();
    await this.#inboxLoop;
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

  /**
   * After a failed attempt: waits until the actor stage flushes again (a store outage makes
   * every attempt fail the same way), so an outage shorter than the wait costs no attempt.
   */
  async #storesBack(logger: Logger): Promise<void> {
    const deadline = Date.now() + STORES_BACK_WITHIN_MS;
    for (let i = 1; Date.now() < deadline && !this.#abort.signal.aborted; i++) {
      try {
        if (this.#d.replayDeps().consumer.flushError === null) return;
      } catch {
        return; // no actor stage: the attempt reports why
      }
      if (i === 1) logger.warn("replay waits for the stores before its next attempt");
      await sleep(1000, this.#abort.signal);
    }
  }

  async #run(jobId: string, spec: ReplaySpec): Promise<void> {
    const attempts = this.#d.attempts ?? 5;
    const logger = this.#d.logger.child("job", { job_id: jobId });
    let lastError = "";
    /** The partitions the first attempt held: later attempts must hold them all again. */
    let held: number[] | undefined;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const cancel = new AbortController();
      const started = Date.now();
      let lastCheck = 0;
      try {
        if (await this.#d.jobs.cancelRequested(jobId)) throw new Cancelled();
        const deps = this.#d.replayDeps();
        await this.#report(jobId, { status: "running", attempt, started_at_ms: started });
        const result = await replayOnNode({
          ...deps,
          logger,
          signal: cancel.signal,
          ...(held ? { partitions: held } : {}),
          onHeld: (partitions) => (held ??= partitions),
          onProgress: (p) => {
            void this.#report(jobId, {
              status: "running",
              attempt,
              started_at_ms: started,
              events: p.events,
              progress: progressOf(p, Date.now() - started),
            });
            if (Date.now() - lastCheck < 1000) return;
            lastCheck = Date.now();
            void this.#d.jobs.cancelRequested(jobId).then((yes) => {
              if (yes) cancel.abort(new Cancelled());
            }, () => {});
          },
        }, spec);
        await this.#report(jobId, {
          status: "done",
          attempt,
          started_at_ms: started,
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
          attempt,
        });
        return;
      } catch (err) {
        if (err instanceof Cancelled || cancel.signal.aborted) {
          metrics.replayJobs.labels("cancelled").inc();
          await this.#report(jobId, { status: "cancelled", attempt });
          await this.#audit(jobId, spec, "cancelled", { attempt });
          return;
        }
        lastError = (err as Error).message ?? String(err);
        logger.error("replay share failed", { attempt, attempts, err });
        if (err instanceof PartitionsMovedError) {
          // Restarted partitions come back here within the backoff; one that moved to another
          // node is beyond this share, and the job's retry runs on the current owners.
          lastError +=
            `; if they moved to another node, retry the job (POST /replay/${jobId}/retry)`;
        }
        // A conflict will not clear by retrying within this job.
        if (err instanceof HoldConflictError || attempt === attempts) break;
        await this.#report(jobId, { status: "running", attempt, error: lastError });
        await sleep(
          jitteredBackoffMs(attempt, { baseMs: 1000, capMs: 10_000 }),
          this.#abort.signal,
        );
        await this.#storesBack(logger);
      }
    }
    metrics.replayJobs.labels("failed").inc();
    await this.#report(jobId, { status: "failed", error: lastError });
    await this.#audit(jobId, spec, "failed", { error: lastError });
  }
}

/** Waits this long at most for the actor stage's flushes to succeed again before a retry. */
const STORES_BACK_WITHIN_MS = 10 * 60_000;

class Cancelled extends Error {
  constructor() {
    super("cancelled by an operator");
    this.name = "Cancelled";
  }
}

function progressOf(p: ReplayProgress, elapsedMs: number): NodeProgress {
  const fraction = p.recordsTotal === 0 ? 1 : p.recordsRead / p.recordsTotal;
  return {
    records_read: p.recordsRead,
    records_total: p.recordsTotal,
    events: p.events,
    keys: p.keys,
    percent: Math.floor(1000 * fraction) / 10,
    eta_ms: fraction > 0 && elapsedMs > 0
      ? Math.round(elapsedMs * (1 - fraction) / fraction)
      : null,
  };
}
