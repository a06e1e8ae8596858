/**
 * What the actor stage persists per normalized partition, beside the key actors' snapshots:
 * the event-time clock built from the partition's watermark records (CONTRACT.md, "Event
 * time") and the keys that still have open bars, so a restart, a handoff and a replay
 * resume from the same clock and still close every bar.
 */
import { z } from "zod";

/** The latest watermark record seen from one source partition. */
export const SourceMark = z.object({
  watermark_ms: z.number().int().nullable(),
  idle: z.boolean(),
  wall_ms: z.number().int(),
});
export type SourceMark = z.infer<typeof SourceMark>;

export const ClockState = z.object({
  /** Latest record seen per source partition, by `${source_topic}:${source_partition}`. */
  sources: z.record(z.string(), SourceMark),
  /** Partitions of each source topic (the sources the clock must hear from). */
  source_partitions: z.record(z.string(), z.number().int().min(1)),
  /** The clock: greatest min over active sources so far; null until defined. */
  clock_ms: z.number().int().nullable(),
});
export type ClockState = z.infer<typeof ClockState>;

export const PersistedPartition = z.object({
  /** Last partition offset the state includes. */
  offset: z.number().int(),
  clock: ClockState,
  /** Keys with open bars and the clock value at which their first bar closes. */
  pending: z.record(z.string(), z.number()),
  saved_at_ms: z.number().int(),
});
export type PersistedPartition = z.infer<typeof PersistedPartition>;

/** The clock as of an offset (records at or below it included): where a replay starts. */
export const ClockCheckpoint = z.object({ offset: z.number().int(), clock: ClockState });
export type ClockCheckpoint = z.infer<typeof ClockCheckpoint>;
