/** The outcome of normalizing one Bronze record: a Silver event or a reason to DLQ it. */

export type RejectionReason = "invalid_payload" | "unknown_instrument" | "unknown_curve";

export interface Rejection {
  reason: RejectionReason;
  /** For `invalid_payload`, starts with the first failing field: `ts: must be ...`. */
  message: string;
}

export type NormalizeResult<T> = { ok: true; event: T } | { ok: false; rejection: Rejection };

export function rejected<T>(reason: RejectionReason, message: string): NormalizeResult<T> {
  return { ok: false, rejection: { reason, message } };
}

/** `invalid_payload` whose message always starts with the first failing field. */
export function invalidPayload<T>(field: string, message: string): NormalizeResult<T> {
  const text = message.startsWith(`${field}:`) ? message : `${field}: ${message}`;
  return rejected("invalid_payload", text);
}
