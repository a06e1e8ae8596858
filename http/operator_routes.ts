/**
 * Operator endpoints of CONTRACT.md: inspect actors and partitions. A key owned by another
 * node is answered by that node (proxied), a passivated key from its snapshot.
 */
import type { Hono } from "hono";
import type { Config } from "../config/config.ts";
import type { Logger } from "../observability/logger.ts";
import type { ActorStore } from "../stores/actor_store.ts";
import type { Sql } from "../stores/postgres.ts";
import type { ActorConsumer } from "../supervisors/actor_consumer.ts";
import type { NodeRegistry } from "../supervisors/node_registry.ts";
import { HttpError } from "./errors.ts";
import { ACTOR_KINDS, type ActorKind } from "../actors/actor_kinds.ts";

export interface OperatorDeps {
  config: Config;
  logger: Logger;
  nodeId: string;
  store: ActorStore;
  nodes: NodeRegistry;
  sql: Sql;
  actors: () => ActorConsumer | undefined;
  selfUrl: () => string;
}

const KEY_PATTERN = /^[A-Za-z0-9._:\-\/]{1,200}$/;

export function parseKind(kind: string): ActorKind {
  if (!(ACTOR_KINDS as readonly string[]).includes(kind)) {
    throw new HttpError(400, "bad_kind", `kind must be one of ${ACTOR_KINDS.join(", ")}`);
  }
  return kind as ActorKind;
}

export function parseKey(key: string): string {
  if (!KEY_PATTERN.test(key)) {
    throw new HttpError(400, "bad_key", "key must be 1-200 characters of [A-Za-z0-9._:-/]");
  }
  return key;
}

export function operatorRoutes(deps: OperatorDeps) {
  return (app: Hono) => {
    app.get("/actors/:kind/:key{.+}", async (c) => {
      const kind = parseKind(c.req.param("kind"));
      const key = parseKey(c.req.param("key"));
      const consumer = deps.actors();
      const live = consumer?.findLive(kind, key);
      if (live) return c.json({ node_id: deps.nodeId, ...live.actor.inspect() });

      const persisted = (await deps.store.load(kind, [key])).get(key);
      if (persisted) {
        const topic = persisted.kind === "instrument"
          ? "normalized.market.ticks.v1"
          : "normalized.curves.v1";
        const owned = consumer?.assignment().some((a) =>
          a.partition === persisted.partition && a.topic.endsWith(topic)
        );
        if (!owned && c.req.header("x-dp-forwarded") === undefined) {
          const owner = (await deps.nodes.list()).find((n) =>
            n.node_id !== deps.nodeId &&
            n.partitions.some((p) => p.partition === persisted.partition && p.topic.endsWith(topic))
          );
          if (owner) {
            const res = await fetch(`${owner.url}/actors/${kind}/${encodeURIComponent(key)}`, {
              headers: { "x-dp-forwarded": deps.nodeId },
              signal: AbortSignal.timeout(5000),
            });
            return new Response(res.body, { status: res.status, headers: res.headers });
          }
        }
        const machine = persisted.machine as { value?: unknown; context?: unknown };
        return c.json({
          node_id: deps.nodeId,
          kind,
          key,
          partition: persisted.partition,
          status: "passivated",
          state: machine.value ?? null,
          context: machine.context ?? null,
          applied_offset: persisted.offset,
          mailbox_depth: 0,
          restarts: persisted.restarts,
          last_events: persisted.history,
          saved_at_ms: persisted.saved_at_ms,
        });
      }
      throw new HttpError(404, "not_found", `no ${kind} actor for key ${key}`);
    });

    app.get("/partitions", async (c) => {
      return c.json({
        node_id: deps.nodeId,
        partitions: deps.actors()?.partitionViews() ?? [],
        nodes: await deps.nodes.list(),
      });
    });
  };
}
