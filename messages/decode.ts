/**
 * Decoding at the Kafka edge: bytes -> UTF-8 -> JSON -> schema, once. Failures say which
 * step failed and, for schema failures, the first failing field.
 */
import type { z } from "zod";

export type Decoded<T> =
  | { ok: true; value: T }
  | { ok: false; field: string; message: string };

// The replacing decoder is ~3x faster than the fatal one in Deno (100 vs 315 ns for a 330-byte
// tick). Every invalid sequence becomes U+FFFD, so only text holding U+FFFD (invalid, or that
// character written on purpose) is checked again strictly.
const utf8 = new TextDecoder("utf-8");
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export function decodeJson<S extends z.ZodType>(
  schema: S,
  bytes: Uint8Array | null,
  /** A hand-written check of the same rules: records it accepts skip the zod parse. */
  fastCheck?: (value: unknown) => value is z.infer<S>,
): Decoded<z.infer<S>> {
  if (bytes === null) return { ok: false, field: "value", message: "record has no value" };
  const text = utf8.decode(bytes);
  if (text.includes("\uFFFD")) {
    try {
      strictUtf8.decode(bytes);
    } catch {
      return { ok: false, field: "value", message: "value is not valid UTF-8" };
    }
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, field: "value", message: `value is not JSON: ${(err as Error).message}` };
  }
  if (fastCheck?.(json)) return { ok: true, value: json };
  const parsed = schema.safeParse(json);
  if (parsed.success) return { ok: true, value: parsed.data };
  const issue = parsed.error.issues[0];
  const field = issue && issue.path.length > 0 ? issue.path.join(".") : "value";
  return { ok: false, field, message: `${field}: ${issue?.message ?? "invalid"}` };
}
