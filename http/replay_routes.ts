/**
 * Replay jobs (every route needs the admin token): `POST /replay` rebuilds a key range or
 * prefix on every node that owns partitions of the kind and answers 202 with a job id, or
 * 409 naming the job already running over an overlapping range; `GET /replay` lists recent
 * jobs; `GET /replay/{id}` shows status, progress (percent and ETA) and, for a dry run, the
 * differences found; `POST /replay/{id}/cancel` stops it; `POST /replay/{id}/retry` runs a
 * finished job's spec again as a new job.
 */
import type { Context, Hono, MiddlewareHandler } from "hono";
import { z } from "zod";
import { kindOf, KINDS } from "../actors/kinds/registry.ts";
import type { Config } from "../config/config.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { recordAudit } from "../stores/audit_log.ts";
import { topicNames } from "../stores/kafka.ts";
import type { Sql } from "../stores/postgres.ts";
import type { NodeRegistry } from "../supervisors/node_registry.ts";
import type { ReplaySpec } from "../supervisors/replay_spec.ts";
import { ReplayConflict, type ReplayJobs } from "../supervisors/replay_jobs.ts";
import { HttpError } from "./errors.ts";
import { jsonBody } from "./json_body.ts";

export interface ReplayRouteDeps {
  config: Config;
  logger: Logger;
  nodeId: string;
  sql: Sql;
  nodes: NodeRegistry;
  jobs: ReplayJobs;
  /** Rejects requests without the admin token (401/403); named by the action it guards. */
  adminGuard: (action: string) => MiddlewareHandler;
  /** Who is asking, for the audit log. */
  caller: (c: Context) => string;
}

const KEY = z.string().min(1).max(200);

const ReplayRequest = z.object({
  kind: z.enum(KINDS.map((k) => k.name) as [string, ...string[]]),
  from_key: KEY.optional(),
  to_key: KEY.optional(),
  prefix: z.string().max(200).optional(),
  from_time: z.union([z.number().int().min(0), z.string().min(1)]).optional(),
  dry_run: z.boolean().optional(),
  requested_by: z.string().max(200).optional(),
}).strict().superRefine((body, ctx) => {
  const range = body.from_key !== undefined || body.to_key !== undefined;
  if (range === (body.prefix !== undefined)) {
    ctx.addIssue({ code: "custom", message: "give either from_key/to_key or prefix" });
  }
  if (body.from_key !== undefined && body.to_key !== undefined && body.from_key > body.to_key) {
    ctx.addIssue({ code: "custom", path: ["to_key"], message: "to_key sorts before from_key" });
  }
});

function parseTime(value: number | string | undefined): number {
  if (value === undefined) return 0;
  if (typeof value === "number") return value;
  if (/^\d+$/.test(value)) return Number(value);
  const ms = Date.parse(value);
  if (!Number.isFinite(ms) || !/[Zz]|[+-]\d{2}:?\d{2}$/.test(value)) {
    throw new HttpError(400, "bad_request", "from_time must be epoch ms or ISO-8601 with a zone");
  }
  return ms;
}

function toSpec(body: z.infer<typeof ReplayRequest>): ReplaySpec {
  return {
    kind: body.kind,
    ...(body.from_key !== undefined ? { fromKey: body.from_key } : {}),
    ...(body.to_key !== undefined ? { toKey: body.to_key } : {}),
    ...(body.prefix !== undefined ? { prefix: body.prefix } : {}),
    fromTimeMs: parseTime(body.from_time),
    dryRun: body.dry_run ?? false,
  };
}

const JOB_ID = /^[0-9a-f-]{36}$/;
const LIST_LIMIT = 50;

function jobId(c: Context): string {
  const id = c.req.param("id") ?? "";
  if (!JOB_ID.test(id)) throw new HttpError(400, "bad_job_id", "not a job id");
  return id;
}

export function replayRoutes(deps: ReplayRouteDeps) {
  const liveNodes = async () => new Set((await deps.nodes.list()).map((n) => n.node_id));

  /** Creates and starts a job, or throws 409 naming the overlapping job still running. */
  const startJob = async (spec: ReplaySpec, who: string) => {
    const topic = kindOf(spec.kind).inputTopic(topicNames(deps.config.DATA_PROC_TOPIC_PREFIX));
    const nodes = await deps.nodes.list();
    const owners = nodes.filter((n) => n.partitions.some((p) => p.topic === topic));
    if (owners.length === 0) {
      await recordAudit(deps.sql, {
        actor: who,
        action: "replay.start",
        target: { ...spec },
        outcome: "refused",
        details: { reason: "no node owns partitions of this kind" },
      });
      throw new HttpError(409, "no_owner", "no node owns partitions of this kind yet");
    }
    let id: string;
    try {
      id = await deps.jobs.create(
        spec,
        who,
        owners.map((n) => n.node_id),
        new Set(nodes.map((n) => n.node_id)),
      );
    } catch (err) {
      if (!(err instanceof ReplayConflict)) throw err;
      await recordAudit(deps.sql, {
        actor: who,
        action: "replay.start",
        target: { ...spec },
        outcome: "refused",
        details: { reason: "overlapping job running", job_id: err.running.job_id },
      });
      throw new HttpError(
        409,
        "replay_running",
        `replay job ${err.running.job_id} (${err.running.status}) covers an overlapping key ` +
          "range; wait for it, or cancel it with POST /replay/{id}/cancel",
      );
    }
    // Every owner, this node included, takes its share from its inbox (ReplayRunner).
    metrics.replayJobs.labels("started").inc();
    await recordAudit(deps.sql, {
      actor: who,
      action: "replay.start",
      target: { ...spec },
      outcome: "accepted",
      details: { job_id: id, nodes: owners.map((n) => n.node_id) },
    });
    return { job_id: id, status_url: `/replay/${id}`, nodes: owners.map((n) => n.node_id) };
  };

  return (app: Hono) => {
    app.post("/replay", deps.adminGuard("replay.start"), async (c) => {
      const body = await jsonBody(c, ReplayRequest);
      const spec = toSpec(body);
      const who = body.requested_by ? `${deps.caller(c)} for ${body.requested_by}` : deps.caller(c);
      return c.json(await startJob(spec, who), 202);
    });

    app.get("/replay", deps.adminGuard("replay.list"), async (c) => {
      const limit = Number(c.req.query("limit") ?? 20);
      if (!Number.isInteger(limit) || limit < 1 || limit > LIST_LIMIT) {
        throw new HttpError(400, "bad_request", `limit must be an integer from 1 to ${LIST_LIMIT}`);
      }
      const jobs = await deps.jobs.recent(limit, await liveNodes());
      // The list leaves out per-key detail; GET /replay/{id} has it.
      return c.json({
        jobs: jobs.map(({ keys, differences, nodes, ...job }) => ({
          ...job,
          keys: keys.length,
          ...(differences ? { differences: differences.length } : {}),
          nodes: nodes.map(({ keys: _k, differences: _d, ...n }) => n),
        })),
      });
    });

    app.get("/replay/:id", deps.adminGuard("replay.read"), async (c) => {
      const id = jobId(c);
      const job = await deps.jobs.get(id, await liveNodes());
      if (!job) throw new HttpError(404, "not_found", `no replay job ${id}`);
      return c.json(job);
    });

    app.post("/replay/:id/cancel", deps.adminGuard("replay.cancel"), async (c) => {
      const id = jobId(c);
      if (!(await deps.jobs.cancel(id, deps.caller(c)))) {
        throw new HttpError(404, "not_found", `no replay job ${id}`);
      }
      await recordAudit(deps.sql, {
        actor: deps.caller(c),
        action: "replay.cancel",
        target: { job_id: id },
        outcome: "accepted",
        details: {},
      });
      return c.json({ job_id: id, status: "cancelling" }, 202);
    });

    app.post("/replay/:id/retry", deps.adminGuard("replay.retry"), async (c) => {
      const id = jobId(c);
      const job = await deps.jobs.get(id, await liveNodes());
      if (!job) throw new HttpError(404, "not_found", `no replay job ${id}`);
      if (!["failed", "cancelled"].includes(job.status)) {
        throw new HttpError(409, "not_finished", `replay job ${id} is ${job.status}, not failed`);
      }
      return c.json({ ...(await startJob(job.spec, deps.caller(c))), retry_of: id }, 202);
    });
  };
}
