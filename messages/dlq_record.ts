/** `dlq.data-processing.v1`: one envelope per record that could not be processed. */
import { z } from "zod";

export const DlqReason = z.enum([
  "invalid_payload",
  "unknown_instrument",
  "unknown_curve",
  "late_event",
  "poison_event",
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
