/**
 * Actor endpoints: inspect one key (answered by its owner), list keys, and the admin reset.
 *
 * - `GET /actors/{kind}/{key}`: live here -> its state; stored with the partition owned here
 *   or by nobody -> its snapshot (`status: passivated`); owned by a peer -> forwarded to it;
 *   neither live here nor stored -> asked of every peer (a key not flushed yet lives only in
 *   its owner's memory), else 404.
 * - `GET /actors?kind=&prefix=&limit=`: this node's live keys plus every stored snapshot
 *   (Redis SCAN), deduplicated, sorted by (kind, key); memory bounded by the limit.
 * - `POST /actors/{kind}/{key}/reset` (admin): done by the owner node (forwarded there).
 */
import type { Hono, MiddlewareHandler } from "hono";
import { z } from "zod";
import type { ActorKind } from "../actors/actor_kinds.ts";
import { KIND_NAMES } from "../actors/kinds/registry.ts";
import type { PersistedActor } from "../messages/persisted_actor.ts";
import { withSpan } from "../observability/tracing.ts";
import { adminIdentity, parseRequestedBy } from "./admin_auth.ts";
import { auditAdminAction } from "./admin_audit.ts";
import { locateActor, storedView } from "./actor_location.ts";
import { onlyQuery, parseKey, parseKind, parseLimit, parsePrefix } from "./actor_params.ts";
import { HttpError } from "./errors.ts";
import { askPeers, forwardTo, isForwarded } from "./forward.ts";
import { jsonBody } from "./json_body.ts";
import type { OperatorDeps } from "./operator_deps.ts";

const ResetBody = z.object({
  requested_by: z.string().optional(),
  reason: z.string().max(500).optional(),
}).strict();

const LIST_DEFAULT = 100;
const LIST_MAX = 1000;

/** Keeps the `limit` smallest distinct ids seen, in O(limit) memory. */
class SmallestIds {
  readonly #limit: number;
  #ids = new Set<string>();
  #dropped = false;
  #cutoff: string | undefined;

  constructor(limit: number) {
    this.#limit = limit;
  }

  add(id: string): void {
    if (this.#cutoff !== undefined && id >= this.#cutoff) {
      if (!this.#ids.has(id)) this.#dropped = true;
      return;
    }
    this.#ids.add(id);
    if (this.#ids.size >= 2 * this.#limit) this.#trim();
  }

  #trim(): void {
    const sorted = [...this.#ids].sort();
    if (sorted.length > this.#limit) {
      this.#dropped = true;
      this.#cutoff = sorted[this.#limit];
    }
    this.#ids = new Set(sorted.slice(0, this.#limit));
  }

  result(): { ids: string[]; truncated: boolean } {
    this.#trim();
    return { ids: [...this.#ids].sort(), truncated: this.#dropped };
  }
}

const SEP = "\u0000";

interface ListedActor {
  kind: ActorKind;
  key: string;
  /** live: in this node's memory; passivated: snapshot, partition here or unowned; remote: a peer owns it. */
  status: "live" | "passivated" | "remote";
  partition: number;
  owner: string | null;
  saved_at_ms?: number;
}

function notOwned(kind: ActorKind, partition: number): HttpError {
  return new HttpError(
    503,
    "owner_unavailable",
    `no node holds ${kind} partition ${partition} right now; retry shortly`,
  );
}

export function actorRoutes(
  deps: OperatorDeps,
  requireAdmin: (action: string) => MiddlewareHandler,
) {
  const audit = { sql: deps.sql, logger: deps.logger, nodeId: deps.nodeId };

  return (app: Hono) => {
    app.get("/actors", async (c) => {
      onlyQuery(c.req.query(), ["kind", "prefix", "limit"]);
      const kindParam = c.req.query("kind");
      const kinds = kindParam === undefined || kindParam === ""
        ? KIND_NAMES
        : [parseKind(kindParam)];
      const prefix = parsePrefix(c.req.query("prefix"));
      const limit = parseLimit(c.req.query("limit"), LIST_DEFAULT, LIST_MAX);

      const picked = new SmallestIds(limit);
      const live = new Map<string, number>();
      for (const l of deps.actors.liveKeys(kinds)) {
        if (!l.key.startsWith(prefix)) continue;
        const id = `${l.kind}${SEP}${l.key}`;
        live.set(id, l.partition);
        picked.add(id);
      }
      for (const kind of kinds) {
        await deps.actors.scanStoredKeys(kind, prefix, (key) => picked.add(`${kind}${SEP}${key}`));
      }
      const { ids, truncated } = picked.result();

      // Partitions and owners of the stored ones on this page.
      const stored = new Map<string, PersistedActor>();
      for (const kind of kinds) {
        const keys = ids.filter((id) => id.startsWith(`${kind}${SEP}`) && !live.has(id))
          .map((id) => id.slice(kind.length + 1));
        const loaded = await deps.actors.loadStored(kind, keys);
        for (const [key, p] of loaded) stored.set(`${kind}${SEP}${key}`, p);
      }
      const nodes = stored.size > 0 ? await deps.nodes.list() : [];
      const actors = ids.flatMap((id): ListedActor[] => {
        const [kind, key] = id.split(SEP) as [ActorKind, string];
        const livePartition = live.get(id);
        if (livePartition !== undefined) {
          return [{ kind, key, status: "live", partition: livePartition, owner: deps.nodeId }];
        }
        const p = stored.get(id);
        if (!p) return []; // deleted between SCAN and load
        const topic = deps.actors.topicOf(kind);
        const here = deps.actors.assignedHere(kind, p.partition);
        const owner = here ? deps.nodeId : nodes.find((n) =>
          n.node_id !== deps.nodeId &&
          n.partitions.some((x) => x.topic === topic && x.partition === p.partition)
        )?.node_id ?? null;
        return [{
          kind,
          key,
          status: owner === null || owner === deps.nodeId ? "passivated" : "remote",
          partition: p.partition,
          owner,
          saved_at_ms: p.saved_at_ms,
        }];
      });
      return c.json({
        node_id: deps.nodeId,
        kind: kinds.length === 1 ? kinds[0] : null,
        prefix,
        limit,
        count: actors.length,
        truncated,
        actors,
      });
    });

    app.get("/actors/:kind/:key{.+}", async (c) => {
      onlyQuery(c.req.query(), []);
      const kind = parseKind(c.req.param("kind"));
      const key = parseKey(c.req.param("key"));
      const where = await locateActor(deps, kind, key);
      if (where?.where === "live") {
        return c.json({ node_id: deps.nodeId, owner: deps.nodeId, ...where.inspect });
      }
      if (where?.where === "here" || where?.where === "unowned") {
        // Owned here, or by nobody right now: the snapshot is the newest state that exists.
        const view = storedView(where.persisted, {
          node_id: deps.nodeId,
          owner: where.where === "here" ? deps.nodeId : null,
        });
        // A passivated key owned here is judged by its partition's clock now.
        const clockMs = deps.actors.ownedClockMs(kind, where.partition);
        if (clockMs !== undefined) view.event_time_clock_ms = clockMs;
        return c.json(view);
      }
      if (where?.where === "peer") {
        if (isForwarded(c)) {
          throw new HttpError(
            503,
            "owner_unavailable",
            `ownership of ${kind} partition ${where.partition} is moving; retry shortly`,
          );
        }
        return await forwardTo(c, where.owner, deps.nodeId);
      }
      if (!isForwarded(c)) {
        // Not stored yet: only its owner's memory holds it, if any node does.
        const peers = (await deps.nodes.list()).filter((n) => n.node_id !== deps.nodeId);
        const { answers } = await askPeers(c, peers, deps.nodeId);
        const found = answers[0];
        if (found) {
          c.header("x-dp-served-by", found.node.node_id);
          return c.json(found.body as Record<string, unknown>);
        }
      }
      throw new HttpError(404, "not_found", `no ${kind} actor for key ${key}`);
    });

    app.post("/actors/:kind/:key{.+}/reset", requireAdmin("actor.reset"), async (c) => {
      const kind = parseKind(c.req.param("kind"));
      const key = parseKey(c.req.param("key"));
      onlyQuery(c.req.query(), []);
      const body = await jsonBody(c, ResetBody);
      const identity = body.requested_by === undefined
        ? adminIdentity(c)
        : { ...adminIdentity(c), requestedBy: parseRequestedBy(body.requested_by) };
      const target = { kind, key };
      const forwardedFrom = c.req.header("x-dp-forwarded") ?? null;
      const details = {
        ...(body.reason !== undefined ? { reason: body.reason } : {}),
        ...(forwardedFrom ? { forwarded_from: forwardedFrom } : {}),
      };
      const fail = async (err: HttpError, extra: Record<string, unknown> = {}) => {
        await auditAdminAction(audit, identity, {
          action: "actor.reset",
          target,
          outcome: "failed",
          details: { ...details, ...extra, error: err.code, message: err.message },
        });
        return err;
      };

      const where = await locateActor(deps, kind, key);
      if (!where) {
        throw await fail(new HttpError(404, "not_found", `no ${kind} actor for key ${key}`));
      }
      if (where.where === "peer") {
        if (isForwarded(c)) {
          throw await fail(
            new HttpError(
              503,
              "owner_unavailable",
              `ownership of ${kind} partition ${where.partition} is moving; retry shortly`,
            ),
            { partition: where.partition },
          );
        }
        // The owner authenticates, resets and audits; this node only relays.
        try {
          return await forwardTo(c, where.owner, deps.nodeId, {
            body: JSON.stringify(body),
            timeoutMs: 30_000,
            signWith: { token: deps.config.DATA_PROC_ADMIN_TOKEN, callerTokenId: identity.tokenId },
          });
        } catch (err) {
          if (err instanceof HttpError) throw await fail(err, { owner: where.owner.node_id });
          throw err;
        }
      }
      if (where.where === "unowned") {
        throw await fail(notOwned(kind, where.partition), { partition: where.partition });
      }

      return await withSpan("http.actor_reset", {
        "dp.kind": kind,
        "dp.partition": where.partition,
      }, async () => {
        const at = { partition: where.partition };
        const result = await deps.actors.reset(kind, key, where.partition);
        switch (result.status) {
          case "not_owned":
            throw await fail(notOwned(kind, where.partition), at);
          case "failed":
            throw await fail(
              new HttpError(503, "reset_failed", `reset failed: ${result.error.message}`),
              at,
            );
          case "unknown":
            throw await fail(new HttpError(404, "not_found", `no ${kind} actor for key ${key}`));
          case "moved":
            // Its flush was fenced: the new owner holds the state from before the reset.
            throw await fail(
              new HttpError(
                409,
                "owner_changed",
                `${kind} partition ${where.partition} moved before the reset was stored; ` +
                  "nothing was reset: repeat the request (it goes to the new owner)",
              ),
              at,
            );
          case "replaying":
            throw await fail(
              new HttpError(
                409,
                "replay_running",
                `a replay is rebuilding ${kind} ${key}; reset it after the replay ends`,
              ),
              at,
            );
          case "incomplete":
            throw await fail(
              new HttpError(
                503,
                "reset_incomplete",
                `state was reset (version base ${result.versionBase}) but its projections were ` +
                  `not all cleared: ${result.error.message}; repeat the reset`,
              ),
              { ...at, version_base: result.versionBase },
            );
        }
        const { versionBase, cleared } = result;
        const auditId = await auditAdminAction(audit, identity, {
          action: "actor.reset",
          target,
          outcome: "ok",
          details: {
            ...details,
            partition: where.partition,
            version_base: versionBase,
            ...cleared,
          },
        });
        return c.json({
          node_id: deps.nodeId,
          kind,
          key,
          partition: where.partition,
          version_base: versionBase,
          cleared,
          audit_id: auditId,
        });
      });
    });
  };
}
