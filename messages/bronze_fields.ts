/**
 * Field schemas shared by the Bronze inputs of CONTRACT.md. Each one validates the wire
 * form; `EventTime` also converts it to UTC epoch milliseconds, since validating an
 * ISO-8601 time already means parsing it.
 */
import { z } from "zod";

/** ClickHouse `DateTime`/`Date` hold 1970-01-01 .. 2106-02-07 (UInt32 seconds). */
export const MAX_EVENT_TIME_MS = 4_294_967_295_000;

// YYYY-MM-DDTHH:MM[:SS[.fraction]] followed by a zone (Z or ±hh:mm): a zone is required.
const ZONED_ISO =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/** Parses an ISO-8601 time with a zone to UTC epoch ms; undefined when invalid. */
export function parseZonedIsoTime(text: string): number | undefined {
  const m = ZONED_ISO.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute] = [m[1], m[2], m[3], m[4], m[5]].map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const second = m[6] === undefined ? 0 : Number(m[6]);
  // Sub-millisecond digits are truncated (not rounded) so the result never crosses a second.
  const ms = m[7] === undefined ? 0 : Number(m[7].padEnd(3, "0").slice(0, 3));
  if (!isValidDate(year, month, day) || hour > 23 || minute > 59 || second > 59) {
    return undefined;
  }
  let offsetMinutes = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offsetMinutes = (m[9] === "-" ? -1 : 1) * (oh * 60 + om);
  }
  return Date.UTC(year, month - 1, day, hour, minute, second, ms) - offsetMinutes * 60_000;
}

function isValidDate(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  const daysInMonth = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return day <= daysInMonth;
}

function inStorableRange(ms: number): boolean {
  return ms >= 0 && ms <= MAX_EVENT_TIME_MS;
}

/** `event_id`: 1..128 characters. */
export const EventId = z.string().min(1).max(128);

/** A non-empty name (source, symbol, curve, tenor). */
export const Name = z.string().min(1).max(256);

/** `ts`: ISO-8601 with a zone, or integer epoch ms; output is UTC epoch ms. */
export const EventTime = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = typeof value === "string" ? parseZonedIsoTime(value) : value;
  if (ms === undefined) {
    ctx.addIssue({
      code: "custom",
      message: "must be an ISO-8601 time with a zone (Z or ±hh:mm) or integer epoch ms",
    });
    return z.NEVER;
  }
  if (!Number.isSafeInteger(ms) || !inStorableRange(ms)) {
    ctx.addIssue({
      code: "custom",
      message: "must be an integer epoch ms between 1970-01-01 and 2106-02-07",
    });
    return z.NEVER;
  }
  return ms;
});

// Optional sign, digits with an optional fraction (or a bare fraction), optional exponent.
export const DECIMAL_TEXT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d{1,3})?$/;

/** `price`: a finite number or a decimal string (kept as given for exact arithmetic). */
export const DecimalValue = z.union([
  z.number().refine(Number.isFinite, "must be a finite number"),
  z.string().max(64).regex(DECIMAL_TEXT, "must be a decimal string like -12.50"),
]);

/** `size`: a number or decimal string > 0; output is the nearest double. */
export const PositiveQuantity = DecimalValue.transform((value, ctx) => {
  const n = typeof value === "number" ? value : Number(value);
  if (!(n > 0) || !Number.isFinite(n)) {
    ctx.addIssue({ code: "custom", message: "must be > 0" });
    return z.NEVER;
  }
  return n;
});

/** `as_of`: a valid calendar date `YYYY-MM-DD` that ClickHouse `Date` can hold. */
export const CalendarDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "must be YYYY-MM-DD")
  .refine((text) => {
    const [y, m, d] = text.split("-").map(Number) as [number, number, number];
    return y >= 1970 && y <= 2105 && isValidDate(y, m, d);
  }, "must be a valid date between 1970-01-01 and 2105-12-31");
