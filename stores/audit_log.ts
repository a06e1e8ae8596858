/** `audit_log`: every operator action (reset, replay, DLQ reprocess, repair) with its outcome. */
import type { Sql } from "./postgres.ts";

export interface AuditEntry {
  /** Who: a token id or a caller-given name. */
  actor: string;
  /** What: e.g. `actor.reset`, `replay.start`, `dlq.reprocess`, `reconcile.repair`. */
  action: string;
  target: Record<string, unknown>;
  /** `ok`, `failed`, `refused`, `started`, ... */
  outcome: string;
  details?: Record<string, unknown>;
}

/** Appends one entry; returns its id. */
export async function recordAudit(sql: Sql, entry: AuditEntry): Promise<string> {
  const rows = await sql<{ id: string }[]>`
    INSERT INTO audit_log (actor, action, target, outcome, details)
    VALUES (${entry.actor}, ${entry.action}, ${sql.json(entry.target as never)},
            ${entry.outcome}, ${sql.json((entry.details ?? {}) as never)})
    RETURNING id::text AS id`;
  return rows[0]!.id;
}
