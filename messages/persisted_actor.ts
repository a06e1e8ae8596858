/**
 * What is stored per key in Redis (`snapshot:{kind}:{key}`): the XState persisted snapshot
 * of the key's machine and the partition offset it includes. Shared by the actor runtime,
 * which writes it, and the stores and HTTP layers, which read it.
 */
export interface PersistedActor {
  kind: "instrument" | "curve";
  key: string;
  partition: number;
  /** Last partition offset applied to this key (-1: none). */
  offset: number;
  machine: unknown;
  history: Record<string, unknown>[];
  restarts: number;
  saved_at_ms: number;
}
