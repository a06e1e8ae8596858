/** What the operator endpoints need from the node (wired in app/node.ts). */
import type { Config } from "../config/config.ts";
import type { HotKeys } from "../observability/hot_keys.ts";
import type { Logger } from "../observability/logger.ts";
import type { Sql } from "../stores/postgres.ts";
import type { ActorService } from "../supervisors/actor_service.ts";
import type { NodeRegistry } from "../supervisors/node_registry.ts";

export interface OperatorDeps {
  config: Config;
  logger: Logger;
  nodeId: string;
  /** This node's actors and their stored state, as HTTP may see them. */
  actors: ActorService;
  nodes: NodeRegistry;
  /** The admin audit log. */
  sql: Sql;
  /** The node's hot-key tracker (fed by the actor consumer's onKeyEvents). */
  hotKeys: HotKeys;
  selfUrl: () => string;
}
