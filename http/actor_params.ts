/** Path and query parameters of the actor endpoints, validated (400 with a code on bad input). */
import type { ActorKind } from "../actors/actor_kinds.ts";
import { KIND_NAMES } from "../actors/kinds/registry.ts";
import { HttpError } from "./errors.ts";

const KEY_PATTERN = /^[A-Za-z0-9._:\-\/]{1,200}$/;
const PREFIX_PATTERN = /^[A-Za-z0-9._:\-\/]{0,200}$/;

export function parseKind(kind: string): ActorKind {
  if (!KIND_NAMES.includes(kind)) {
    throw new HttpError(400, "bad_kind", `kind must be one of ${KIND_NAMES.join(", ")}`);
  }
  return kind as ActorKind;
}

export function parseKey(key: string): string {
  if (!KEY_PATTERN.test(key)) {
    throw new HttpError(400, "bad_key", "key must be 1-200 characters of [A-Za-z0-9._:-/]");
  }
  return key;
}

/** A key prefix for listings: 0-200 characters of the key alphabet. */
export function parsePrefix(prefix: string | undefined): string {
  if (prefix === undefined) return "";
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new HttpError(400, "bad_prefix", "prefix must be 0-200 characters of [A-Za-z0-9._:-/]");
  }
  return prefix;
}

/** `limit` as an integer in 1..max, `fallback` when absent. */
export function parseLimit(value: string | undefined, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  if (!/^\d{1,7}$/.test(value) || Number(value) < 1 || Number(value) > max) {
    throw new HttpError(400, "bad_limit", `limit must be an integer from 1 to ${max}`);
  }
  return Number(value);
}

/** Rejects query parameters an endpoint does not know (a typo is bad input, not ignored). */
export function onlyQuery(query: Record<string, string>, allowed: readonly string[]): void {
  const unknown = Object.keys(query).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new HttpError(
      400,
      "bad_query",
      `unknown query parameter ${unknown.join(", ")}; allowed: ${allowed.join(", ") || "none"}`,
    );
  }
}
