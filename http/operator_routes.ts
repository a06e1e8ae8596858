/**
 * Operator endpoints of CONTRACT.md, mounted on the node's app: actor inspection, listing
 * and reset (http/actor_routes.ts), partitions and hot keys (http/cluster_routes.ts). Admin
 * routes share one `adminAuth` guard and the audit helpers of http/admin_audit.ts; other
 * admin routes (replay) can be mounted with the same guard through `operatorAdmin`.
 */
import type { Hono, MiddlewareHandler } from "hono";
import { adminAuth } from "./admin_auth.ts";
import { auditRefused } from "./admin_audit.ts";
import { actorRoutes } from "./actor_routes.ts";
import { clusterRoutes } from "./cluster_routes.ts";
import type { OperatorDeps } from "./operator_deps.ts";

export type { OperatorDeps } from "./operator_deps.ts";

/** The admin guard of a node: `operatorAdmin(deps)("replay.start")` protects one route. */
export function operatorAdmin(
  deps: Pick<OperatorDeps, "config" | "sql" | "logger" | "nodeId">,
): (action: string) => MiddlewareHandler {
  return adminAuth({
    token: deps.config.DATA_PROC_ADMIN_TOKEN,
    logger: deps.logger,
    onRefused: auditRefused({ sql: deps.sql, logger: deps.logger, nodeId: deps.nodeId }),
  });
}

export function operatorRoutes(
  deps: OperatorDeps,
  options: { admin?: (action: string) => MiddlewareHandler } = {},
) {
  const admin = options.admin ?? operatorAdmin(deps);
  const mounts = [actorRoutes(deps, admin), clusterRoutes(deps)];
  return (app: Hono) => {
    for (const mount of mounts) mount(app);
  };
}
