/**
 * Node and cluster views: `GET /partitions` (this node's partitions with lag and actor
 * counts, plus every node's ownership) and `GET /hot-keys?limit=&scope=node|cluster` (the
 * hottest keys by recent event rate; `cluster` merges every node's answer).
 */
import { KIND_NAMES } from "../actors/kinds/registry.ts";
import type { Hono } from "hono";
import { onlyQuery, parseLimit } from "./actor_params.ts";
import { HttpError } from "./errors.ts";
import { askPeers, isForwarded } from "./forward.ts";
import type { OperatorDeps } from "./operator_deps.ts";
import type { HotKey } from "../observability/hot_keys.ts";

const HOT_DEFAULT = 20;
const HOT_MAX = 1000;

export function clusterRoutes(deps: OperatorDeps) {
  return (app: Hono) => {
    app.get("/partitions", async (c) => {
      onlyQuery(c.req.query(), []);
      const partitions = deps.actors.partitionViews();
      // Every kind, zero when none of its actors lives here.
      const liveActors: Record<string, number> = Object.fromEntries(KIND_NAMES.map((k) => [k, 0]));
      for (const p of partitions) liveActors[p.kind] = (liveActors[p.kind] ?? 0) + p.live_actors;
      return c.json({
        node_id: deps.nodeId,
        partitions,
        live_actors: liveActors,
        nodes: await deps.nodes.list(),
      });
    });

    app.get("/hot-keys", async (c) => {
      onlyQuery(c.req.query(), ["limit", "scope"]);
      const limit = parseLimit(c.req.query("limit"), HOT_DEFAULT, HOT_MAX);
      const scope = c.req.query("scope") ?? "node";
      if (scope !== "node" && scope !== "cluster") {
        throw new HttpError(400, "bad_scope", "scope must be node or cluster");
      }
      const own = deps.hotKeys.top(limit).map((h) => ({ ...h, node_id: deps.nodeId }));
      const body = {
        node_id: deps.nodeId,
        scope,
        capacity: deps.hotKeys.capacity,
        keys: own,
        unreachable: [] as string[],
      };
      if (scope === "cluster" && !isForwarded(c)) {
        const peers = (await deps.nodes.list()).filter((n) => n.node_id !== deps.nodeId);
        const { answers, failed } = await askPeers(c, peers, deps.nodeId);
        const merged = [...own];
        for (const a of answers) {
          const keys = (a.body as { keys?: (HotKey & { node_id: string })[] }).keys ?? [];
          merged.push(...keys);
        }
        merged.sort((x, y) => y.rate_per_s - x.rate_per_s);
        body.keys = merged.slice(0, limit);
        body.unreachable = failed;
      }
      return c.json(body);
    });
  };
}
