/**
 * Where a key's actor is: live on this node, stored (its snapshot) with the partition owned
 * here, by another node, or by no node at the moment. The partition comes from the live
 * actor or the snapshot; the owner from this node's assignment or the node registry.
 */
import type { ActorKind } from "../actors/actor_kinds.ts";
import { historyEntries, type PersistedActor } from "../messages/persisted_actor.ts";
import type { NodeRecord } from "../messages/node_record.ts";
import type { ActorService } from "../supervisors/actor_service.ts";
import type { NodeRegistry } from "../supervisors/node_registry.ts";

export interface LocationDeps {
  nodeId: string;
  actors: ActorService;
  nodes: NodeRegistry;
}

export type ActorLocation =
  | { where: "live"; partition: number; inspect: Record<string, unknown> }
  | { where: "here"; partition: number; persisted: PersistedActor }
  | { where: "peer"; partition: number; persisted: PersistedActor; owner: NodeRecord }
  | { where: "unowned"; partition: number; persisted: PersistedActor };

/** Finds a key; undefined when it has neither a live actor here nor a snapshot. */
export async function locateActor(
  deps: LocationDeps,
  kind: ActorKind,
  key: string,
): Promise<ActorLocation | undefined> {
  const live = deps.actors.inspectLive(kind, key);
  if (live) return { where: "live", partition: live.partition, inspect: live.inspect };
  const persisted = (await deps.actors.loadStored(kind, [key])).get(key);
  if (!persisted) return undefined;
  const partition = persisted.partition;
  if (deps.actors.assignedHere(kind, partition)) return { where: "here", partition, persisted };
  const topic = deps.actors.topicOf(kind);
  const owner = (await deps.nodes.list()).find((n) =>
    n.node_id !== deps.nodeId &&
    n.partitions.some((p) => p.topic === topic && p.partition === partition)
  );
  return owner
    ? { where: "peer", partition, persisted, owner }
    : { where: "unowned", partition, persisted };
}

/** The operator view of a stored (passivated) actor. */
export function storedView(
  persisted: PersistedActor,
  extra: Record<string, unknown>,
): Record<string, unknown> {
  const machine = persisted.machine as { value?: unknown; context?: unknown } | null;
  const context = machine?.context as { clockMs?: unknown } | undefined;
  return {
    ...extra,
    kind: persisted.kind,
    key: persisted.key,
    partition: persisted.partition,
    status: "passivated",
    state: machine?.value ?? null,
    context: machine?.context ?? null,
    applied_offset: persisted.offset,
    event_time_clock_ms: typeof context?.clockMs === "number" ? context.clockMs : null,
    mailbox_depth: 0,
    restarts: persisted.restarts,
    last_events: historyEntries(persisted.history),
    saved_at_ms: persisted.saved_at_ms,
  };
}
