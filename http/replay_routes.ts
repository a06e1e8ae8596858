/**
 * `POST /replay` (admin): rebuild a key range or prefix from a time, on every node that owns
 * partitions of the kind; answers 202 with a job id. `GET /replay/{id}`: progress and, for a
 * dry run, the differences found. `POST /replay/{id}/run` is the node-to-node call.
 */
import type { Context, Hono, MiddlewareHandler } from "hono";
import { z } from "zod";
import type { Config } from "../config/config.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { recordAudit } from "../stores/audit_log.ts";
import type { Sql } from "../stores/postgres.ts";
import type { NodeRegistry } from "../supervisors/node_registry.ts";
import type { ReplaySpec } from "../supervisors/replay.ts";
import type { ReplayJobs } from "../supervisors/replay_jobs.ts";
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
  /** Runs this node's share of a job (in the background). */
  runLocal: (jobId: string, spec: ReplaySpec) => void;
}

const KEY = z.string().min(1).max(200);

const ReplayRequest = z.object({
  kind: z.enum(["instrument", "curve"]),
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

/** The node-to-node form: a spec already validated by the node that took the request. */
const ReplaySpecBody = z.object({
  kind: z.enum(["instrument", "curve"]),
  fromKey: KEY.optional(),
  toKey: KEY.optional(),
  prefix: z.string().max(200).optional(),
  fromTimeMs: z.number().int().min(0),
  dryRun: z.boolean(),
}).strict().transform((s): ReplaySpec => ({
  kind: s.kind,
  ...(s.fromKey !== undefined ? { fromKey: s.fromKey } : {}),
  ...(s.toKey !== undefined ? { toKey: s.toKey } : {}),
  ...(s.prefix !== undefined ? { prefix: s.prefix } : {}),
  fromTimeMs: s.fromTimeMs,
  dryRun: s.dryRun,
}));

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

export function replayRoutes(deps: ReplayRouteDeps) {
  return (app: Hono) => {
    app.post("/replay", deps.adminGuard("replay.start"), async (c) => {
      const body = await jsonBody(c, ReplayRequest);
      const spec = toSpec(body);
      const who = body.requested_by ? `${deps.caller(c)} for ${body.requested_by}` : deps.caller(c);
      const topicSuffix = spec.kind === "instrument"
        ? "normalized.market.ticks.v1"
        : "normalized.curves.v1";
      const owners = (await deps.nodes.list()).filter((n) =>
        n.partitions.some((p) => p.topic.endsWith(topicSuffix))
      );
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
      const jobId = crypto.randomUUID();
      await deps.jobs.create(jobId, spec, who, owners.map((n) => n.node_id));
      for (const owner of owners) {
        if (owner.node_id === deps.nodeId) {
          deps.runLocal(jobId, spec);
          continue;
        }
        try {
          const res = await fetch(`${owner.url}/replay/${jobId}/run`, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              authorization: c.req.header("authorization") ?? "",
            },
            body: JSON.stringify(spec),
            signal: AbortSignal.timeout(5000),
          });
          await res.body?.cancel();
          if (res.status !== 202) throw new Error(`answered ${res.status}`);
        } catch (err) {
          await deps.jobs.update(jobId, {
            node_id: owner.node_id,
            status: "failed",
            error: `could not start on ${owner.url}: ${(err as Error).message}`,
            updated_at_ms: Date.now(),
          });
        }
      }
      metrics.replayJobs.labels("started").inc();
      await recordAudit(deps.sql, {
        actor: who,
        action: "replay.start",
        target: { ...spec },
        outcome: "accepted",
        details: { job_id: jobId, nodes: owners.map((n) => n.node_id) },
      });
      return c.json({
        job_id: jobId,
        status_url: `/replay/${jobId}`,
        nodes: owners.map((n) => n.node_id),
      }, 202);
    });

    app.post("/replay/:id/run", deps.adminGuard("replay.run"), async (c) => {
      const id = c.req.param("id");
      if (!/^[0-9a-f-]{36}$/.test(id)) throw new HttpError(400, "bad_job_id", "not a job id");
      const spec = await jsonBody(c, ReplaySpecBody);
      if (!(await deps.jobs.get(id))) throw new HttpError(404, "not_found", `no replay job ${id}`);
      deps.runLocal(id, spec);
      return c.json({ job_id: id, node_id: deps.nodeId }, 202);
    });

    app.get("/replay/:id", async (c) => {
      const id = c.req.param("id");
      if (!/^[0-9a-f-]{36}$/.test(id)) throw new HttpError(400, "bad_job_id", "not a job id");
      const job = await deps.jobs.get(id);
      if (!job) throw new HttpError(404, "not_found", `no replay job ${id}`);
      return c.json(job);
    });
  };
}
