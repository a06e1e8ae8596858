/**
 * Argument parsing for the runbook tools (`reconcile`, `projection:reconcile`, `dq`):
 * strict flag parsing plus parsers for durations, times and numbers. Every problem is a
 * `UsageError`, which the tools turn into a message and exit code 2.
 */
import { parseArgs } from "node:util";
import { parseWindow } from "../config/config.ts";

/** A bad command line: unknown flag, missing value, or a value that does not parse. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

export type FlagSpec = Record<string, { type: "string" | "boolean"; multiple?: boolean }>;
export type FlagValues = Record<string, string | boolean | (string | boolean)[] | undefined>;

/**
 * Parses `args` strictly against `flags` (no positionals). Unknown flags and flags missing
 * their value are a `UsageError`.
 */
export function parseFlags(args: readonly string[], flags: FlagSpec): FlagValues {
  try {
    const { values } = parseArgs({
      args: [...args],
      options: flags,
      strict: true,
      allowPositionals: false,
    });
    return { ...values } as FlagValues;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === "string" && code.startsWith("ERR_PARSE_ARGS")) {
      throw new UsageError((err as Error).message);
    }
    throw err;
  }
}

/** The string value of `--name`, or undefined when it was not given. */
export function stringFlag(values: FlagValues, name: string): string | undefined {
  const value = values[name];
  if (value === undefined) return undefined;
  if (typeof value !== "string") throw new UsageError(`--${name} needs a value`);
  return value;
}

/** A duration like `30s`, `15m`, `24h`, `7d` (or plain milliseconds) to milliseconds. */
export function parseDuration(name: string, text: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed) && Number(trimmed) > 0) return Number(trimmed);
  const ms = parseWindow(trimmed);
  if (ms === undefined) {
    throw new UsageError(
      `--${name} must be a duration like 30s, 15m, 24h or 7d (or milliseconds), got ${
        JSON.stringify(text)
      }`,
    );
  }
  return ms;
}

/**
 * A point in time: integer epoch milliseconds, or an ISO-8601 date-time with a zone
 * (`2024-05-01T00:00:00Z`, `2024-05-01T02:00:00+02:00`), or a bare date `YYYY-MM-DD` (UTC).
 */
export function parseTime(name: string, text: string): number {
  const trimmed = text.trim();
  if (/^-?\d+$/.test(trimmed)) return Number(trimmed);
  const isoWithZone = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/i;
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/;
  if (isoWithZone.test(trimmed) || dateOnly.test(trimmed)) {
    const ms = Date.parse(dateOnly.test(trimmed) ? `${trimmed}T00:00:00Z` : trimmed);
    if (Number.isFinite(ms)) return ms;
  }
  throw new UsageError(
    `--${name} must be epoch milliseconds or an ISO-8601 time with a zone (e.g. 2024-05-01T00:00:00Z), got ${
      JSON.stringify(text)
    }`,
  );
}

/** A finite number within `[min, max]`; `integer` requires a whole number. */
export function parseNumber(
  name: string,
  text: string,
  options: { min?: number; max?: number; integer?: boolean } = {},
): number {
  const trimmed = text.trim();
  const value = trimmed === "" ? NaN : Number(trimmed);
  const kind = options.integer ? "an integer" : "a number";
  if (!Number.isFinite(value) || (options.integer && !Number.isInteger(value))) {
    throw new UsageError(`--${name} must be ${kind}, got ${JSON.stringify(text)}`);
  }
  if (options.min !== undefined && value < options.min) {
    throw new UsageError(`--${name} must be >= ${options.min}, got ${value}`);
  }
  if (options.max !== undefined && value > options.max) {
    throw new UsageError(`--${name} must be <= ${options.max}, got ${value}`);
  }
  return value;
}
