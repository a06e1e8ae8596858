/** `dlq.data-processing.v1`: one envelope per record that could not be processed. */
import { z } from "zod";

export const DlqReason = z.enum([
  "invalid_payload",
  "unknown_instrument",
  "unknown_curve",
  "late_event",
  "poison_event",
  // Added beyond CONTRACT.md's reasons: a record whose output a store refused as data (too
  // large for Kafka, a value ClickHouse cannot parse), or whose own envelope was too large.
  "write_failed",
  // Added beyond CONTRACT.md's reasons: a curve point whose as_of is older than the dates its
  // curve actor keeps (stage aggregate; see actors/kinds/curve/aggregate.ts).
  "stale_as_of",
]);
export type DlqReason = z.infer<typeof DlqReason>;

export const DlqRecord = z.object({
  source_topic: z.string(),
  source_partition: z.number().int(),
  source_offset: z.string().regex(/^\d+$/).or(z.number().int()),
  key_b64: z.string().nullable(),
  value_b64: z.string().nullable(),
  stage: z.string(),
  reason: DlqReason,
  message: z.string(),
  failed_at_ms: z.number().int(),
});
export type DlqRecord = z.infer<typeof DlqRecord>;

function base64(bytes: Uint8Array | null): string | null {
  if (bytes === null) return null;
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Builds the DLQ envelope of a Kafka record, keeping its key and value bytes intact. */
export function buildDlqRecord(source: {
  topic: string;
  partition: number;
  offset: string | number;
  key: Uint8Array | null;
  value: Uint8Array | null;
}, failure: { stage: string; reason: DlqReason; message: string; nowMs: number }): DlqRecord {
  return {
    source_topic: source.topic,
    source_partition: source.partition,
    // A string, as Kafka clients carry offsets: int64 does not fit a JSON number.
    source_offset: String(source.offset),
    key_b64: base64(source.key),
    value_b64: base64(source.value),
    stage: failure.stage,
    reason: failure.reason,
    message: failure.message,
    failed_at_ms: failure.nowMs,
  };
}
