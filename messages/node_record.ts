/**
 * What a node announces in Redis (`node:{group}:{node_id}`, with a TTL): its id, HTTP
 * address and owned partitions. Written and read by supervisors/node_registry.ts, read by
 * http/ to find a key's owner; decoded when read back, so a bad entry is left out.
 */
import { z } from "zod";

export const NodeRecord = z.object({
  node_id: z.string().min(1),
  url: z.string().min(1),
  partitions: z.array(z.object({ topic: z.string(), partition: z.number().int().min(0) })),
  updated_at_ms: z.number(),
});
export type NodeRecord = z.infer<typeof NodeRecord>;
