/** What the operator endpoints need from the node (wired in app/node.ts). */
import type { Config } from "../config/config.ts";
import type { HotKeys } from "../observability/hot_keys.ts";
import type { Logger } from "../observability/logger.ts";
import type { ActorStore } from "../stores/actor_store.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import type { Sql } from "../stores/postgres.ts";
import type { Redis } from "../stores/redis.ts";
import type { ActorConsumer } from "../supervisors/actor_consumer.ts";
import type { NodeRegistry } from "../supervisors/node_registry.ts";

export interface OperatorDeps {
  config: Config;
  logger: Logger;
  nodeId: string;
  store: ActorStore;
  nodes: NodeRegistry;
  sql: Sql;
  redis: Redis;
  clickhouse: ClickHouseClient;
  /** The node's hot-key tracker (fed by the actor consumer's onKeyEvents). */
  hotKeys: HotKeys;
  actors: () => ActorConsumer | undefined;
  selfUrl: () => string;
}
