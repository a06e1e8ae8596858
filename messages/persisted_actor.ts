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

export const PersistedActor = z.object({
  kind: z.string(),
  key: z.string(),
  partition: z.number().int().min(0),
  /** Last partition offset applied to this key (-1: none). */
  offset: z.number().int().min(-1),
  machine: z.unknown().refine((v) => PersistedMachine.safeParse(v).success, {
    message: "not an XState persisted snapshot (status and context)",
  }),
  history: z.array(z.record(z.string(), z.unknown())),
  restarts: z.number().int().min(0),
  saved_at_ms: z.number(),
});
export type PersistedActor = z.infer<typeof PersistedActor>;
