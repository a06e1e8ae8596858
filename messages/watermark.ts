/**
 * Control records of `normalized.market.ticks.v1` (CONTRACT.md, "Event time"): the
 * normalizer writes one into every partition for each Bronze ticks partition it owns, after
 * the Silver events it covers were acknowledged. Readers recognise them by the Kafka header
 * `dp-control` and skip them as data.
 */
import { z } from "zod";

/** The header that marks a control record; its value names the record's type. */
export const CONTROL_HEADER = "dp-control";
export const WATERMARK_CONTROL = "watermark";

export const WatermarkRecord = z.object({
  type: z.literal("watermark"),
  source_topic: z.string().min(1),
  source_partition: z.number().int().min(0),
  /**
   * Greatest event time normalized from the source partition so far (since its normalizer
   * took it over); null while none was (an empty partition reported idle).
   */
  watermark_ms: z.number().int().nullable(),
  idle: z.boolean(),
  /** The normalizer's wall clock when it wrote the record. */
  wall_ms: z.number().int(),
  /**
   * Extension: partitions of the source topic when the record was written, so a reader
   * knows every source it must hear from before its clock is defined.
   */
  source_partitions: z.number().int().min(1),
});
export type WatermarkRecord = z.infer<typeof WatermarkRecord>;

/** True when a Kafka record carries the `dp-control` header (any value). */
export function isControlRecord(
  headers: Record<string, unknown> | undefined,
): boolean {
  return headers !== undefined && headers[CONTROL_HEADER] !== undefined;
}
