/**
 * What is stored per key in Redis (`snapshot:{kind}:{key}`): the XState persisted snapshot
 * of the key's machine and the partition offset it includes. Shared by the actor runtime,
 * which writes it, and the stores and HTTP layers, which read it; decoded when read back
 * (stores/actor_store.ts), so a value that is not a snapshot never reaches a machine.
 */
import { z } from "zod";

/**
 * The outline of XState's persisted snapshot; its context is the kind's business. The
 * field stays `unknown` to TypeScript (the runtime writes XState's own snapshot type).
 */
const PersistedMachine = z.looseObject({
  status: z.enum(["active", "done", "error", "stopped"]),
  context: z.record(z.string(), z.unknown()),
});

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** One of a key's last events, as its kind summarises it (`last_events`). */
export type HistoryEntry = Record<string, unknown>;

/**
 * A key's last events as a snapshot stores them: the column names, and each column's values
 * oldest first. Stored as objects, the field names repeated in every entry were 60% of an
 * instrument's snapshot; snapshots written before are read as they are (`historyEntries`).
 */
export interface StoredHistory {
  fields: string[];
  columns: unknown[][];
}

/** What a snapshot holds: the stored columns, or the entries as objects (older snapshots). */
export type PersistedHistory = StoredHistory | HistoryEntry[];

/** The entries of a stored history, oldest first, as the summaries they were pushed as. */
export function historyEntries(stored: PersistedHistory): HistoryEntry[] {
  if (Array.isArray(stored)) return stored;
  const { fields, columns } = stored;
  const length = columns[0]?.length ?? 0;
  const entries: HistoryEntry[] = new Array(length);
  for (let k = 0; k < length; k++) {
    const entry: HistoryEntry = {};
    for (let i = 0; i < fields.length; i++) entry[fields[i]!] = columns[i]![k];
    entries[k] = entry;
  }
  return entries;
}

/** Whether `v` is a history a snapshot can hold, in either form. */
export function isPersistedHistory(v: unknown): v is PersistedHistory {
  if (Array.isArray(v)) return v.every(isRecord);
  if (!isRecord(v)) return false;
  const { fields, columns } = v;
  if (!Array.isArray(fields) || !Array.isArray(columns)) return false;
  if (columns.length !== fields.length || !fields.every((f) => typeof f === "string")) {
    return false;
  }
  const length = Array.isArray(columns[0]) ? columns[0].length : 0;
  return columns.every((c) => Array.isArray(c) && c.length === length);
}

export const PersistedActor = z.object({
  kind: z.string(),
  key: z.string(),
  partition: z.number().int().min(0),
  /** Last partition offset applied to this key (-1: none). */
  offset: z.number().int().min(-1),
  machine: z.unknown().refine((v) => PersistedMachine.safeParse(v).success, {
    message: "not an XState persisted snapshot (status and context)",
  }),
  history: z.unknown().refine(isPersistedHistory, {
    message: "not a history: entries, or { fields, columns } of equal lengths",
  }) as z.ZodType<PersistedHistory>,
  restarts: z.number().int().min(0),
  saved_at_ms: z.number(),
});
export type PersistedActor = z.infer<typeof PersistedActor>;

const STATUSES = new Set(["active", "done", "error", "stopped"]);
const FIELDS = [
  "kind",
  "key",
  "partition",
  "offset",
  "machine",
  "history",
  "restarts",
  "saved_at_ms",
];

const isIntAtLeast = (v: unknown, min: number): v is number =>
  Number.isSafeInteger(v) && (v as number) >= min;

/**
 * The rules of PersistedActor checked by hand, without zod's copy of every object: a new
 * owner reads thousands of snapshots at once (a handoff on a minute). It accepts nothing the
 * schema rejects; what it does not accept (an extra field, say) goes to the schema.
 */
export function isPersistedActor(v: unknown): v is PersistedActor {
  if (!isRecord(v)) return false;
  let fields = 0;
  for (const _ in v) fields++;
  const machine = v.machine;
  return fields === FIELDS.length && FIELDS.every((f) => f in v) &&
    typeof v.kind === "string" && typeof v.key === "string" &&
    isIntAtLeast(v.partition, 0) && isIntAtLeast(v.offset, -1) &&
    isRecord(machine) && STATUSES.has(machine.status as string) && isRecord(machine.context) &&
    isPersistedHistory(v.history) &&
    isIntAtLeast(v.restarts, 0) && Number.isFinite(v.saved_at_ms);
}
