/**
 * The audit trail of admin HTTP actions: one `audit_log` row per action with who (token id
 * and caller-given name), what (action and target), when (the row's time) and the outcome,
 * plus a metric per action and outcome. Shared by every admin route (reset, replay, ...).
 */
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { recordAudit } from "../stores/audit_log.ts";
import type { Sql } from "../stores/postgres.ts";
import { type AdminIdentity, auditActor, type RefusedAttempt } from "./admin_auth.ts";

export interface AdminAuditDeps {
  sql: Sql;
  logger: Logger;
  nodeId: string;
}

export interface AdminAuditEntry {
  action: string;
  target: Record<string, unknown>;
  /** `ok`, `failed`, `refused`, `started`, ... */
  outcome: string;
  details?: Record<string, unknown>;
}

/**
 * Records an admin action done (or refused) on this node; returns the audit row id, or null
 * when the row could not be written (the failure and the whole entry are logged as errors,
 * so the action stays traceable from the logs).
 */
export async function auditAdminAction(
  deps: AdminAuditDeps,
  identity: AdminIdentity,
  entry: AdminAuditEntry,
): Promise<string | null> {
  metrics.adminActions.labels(entry.action, entry.outcome).inc();
  const row = {
    actor: auditActor(identity),
    action: entry.action,
    target: entry.target,
    outcome: entry.outcome,
    details: {
      token_id: identity.tokenId,
      requested_by: identity.requestedBy,
      node_id: deps.nodeId,
      ...entry.details,
    },
  };
  try {
    const id = await recordAudit(deps.sql, row);
    deps.logger.info("admin action", { ...row, audit_id: id });
    return id;
  } catch (err) {
    deps.logger.error("audit_log write failed for an admin action", { ...row, err });
    return null;
  }
}

/** The `onRefused` hook of adminAuth: an audit row for a refused attempt. */
export function auditRefused(deps: AdminAuditDeps): (attempt: RefusedAttempt) => Promise<void> {
  return async (attempt) => {
    await recordAudit(deps.sql, {
      actor: attempt.presentedTokenId
        ? `unauthenticated token:${attempt.presentedTokenId}`
        : "unauthenticated",
      action: attempt.action,
      target: attempt.target,
      outcome: "refused",
      details: { reason: attempt.reason, node_id: deps.nodeId },
    });
  };
}
