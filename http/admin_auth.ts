/**
 * Admin authentication for operator actions (reset, replay, ...): `Authorization: Bearer
 * $DATA_PROC_ADMIN_TOKEN`, compared in constant time (SHA-256 digests of both sides, then
 * a loop over every byte). No token configured: every admin endpoint answers 403
 * `admin_disabled`. A refused request is audited (rate-limited, so a flood of bad requests
 * cannot grow `audit_log` without bound) and counted in metrics.
 *
 * Who did it, for the audit log: the token id (first 8 hex digits of sha256(token); the
 * token itself is never stored) plus an optional caller-given name from `X-Requested-By`
 * or a `requested_by` body field, e.g. `token:1a2b3c4d as alice`.
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { HttpError } from "./errors.ts";
import { FORWARDED_HEADER } from "./forward.ts";
import {
  PEER_CALLER_HEADER,
  PEER_SIGNATURE_HEADER,
  PEER_TIME_HEADER,
  verifyPeer,
} from "./peer_auth.ts";

export interface AdminIdentity {
  /** First 8 hex digits of sha256(token). */
  tokenId: string;
  /** The caller-given name, if any (unverified; the token is what authenticates). */
  requestedBy: string | null;
}

declare module "hono" {
  interface ContextVariableMap {
    admin: AdminIdentity;
  }
}

/** What a refused attempt writes to the audit log. */
export interface RefusedAttempt {
  action: string;
  target: Record<string, unknown>;
  reason: "admin_disabled" | "missing_token" | "wrong_token";
  presentedTokenId: string | null;
}

export interface AdminAuthOptions {
  /** The configured token; empty disables admin endpoints. */
  token: string;
  /** Records a refused attempt (e.g. with recordAudit). */
  onRefused?: (attempt: RefusedAttempt) => Promise<void>;
  /** Where a failed audit of a refused attempt is reported (the request is refused anyway). */
  logger: Logger;
  /** Refused attempts audited per minute at most (default 60); the rest are only counted. */
  maxRefusedAuditsPerMinute?: number;
  now?: () => number;
}

const REQUESTED_BY = /^[\x21-\x7e](?:[\x20-\x7e]{0,98}[\x21-\x7e])?$/;

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The audit id of a token: the first 8 hex digits of its SHA-256. */
export async function tokenId(token: string): Promise<string> {
  return hex(await sha256(token)).slice(0, 8);
}

/** Equal-length digests compared without an early exit. */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/** A caller-given name, validated: 1-100 printable ASCII characters, no edge spaces. */
export function parseRequestedBy(value: string | undefined | null): string | null {
  if (value === undefined || value === null) return null;
  if (!REQUESTED_BY.test(value)) {
    throw new HttpError(
      400,
      "bad_requested_by",
      "requested_by must be 1-100 printable ASCII characters",
    );
  }
  return value;
}

/** The `actor` column of an audit row for an identity. */
export function auditActor(identity: AdminIdentity): string {
  const who = `token:${identity.tokenId}`;
  return identity.requestedBy ? `${who} as ${identity.requestedBy}` : who;
}

/** The identity of an authenticated admin request (set by `adminAuth`). */
export function adminIdentity(c: Context): AdminIdentity {
  const identity = c.get("admin");
  if (!identity) throw new Error("adminIdentity() used on a route without adminAuth()");
  return identity;
}

/**
 * Builds the middleware factory for admin routes: `admin("actor.reset")` guards one route
 * and names the action for audit rows of refused attempts.
 */
export function adminAuth(options: AdminAuthOptions): (action: string) => MiddlewareHandler {
  const expected = options.token === "" ? undefined : sha256(options.token);
  const expectedId = options.token === "" ? undefined : tokenId(options.token);
  const now = options.now ?? Date.now;
  const perMinute = options.maxRefusedAuditsPerMinute ?? 60;
  let windowStart = now();
  let auditedInWindow = 0;

  const refuse = async (
    c: Context,
    action: string,
    reason: RefusedAttempt["reason"],
    presentedTokenId: string | null,
  ): Promise<never> => {
    metrics.adminActions.labels(action, "refused").inc();
    if (now() - windowStart >= 60_000) {
      windowStart = now();
      auditedInWindow = 0;
    }
    if (options.onRefused && auditedInWindow < perMinute) {
      auditedInWindow++;
      const attempt = {
        action,
        target: { method: c.req.method, path: c.req.path },
        reason,
        presentedTokenId,
      };
      try {
        await options.onRefused(attempt);
      } catch (err) {
        options.logger.error("audit of a refused admin request failed", { ...attempt, err });
      }
    }
    options.logger.warn("admin request refused", { action, reason, path: c.req.path });
    if (reason === "admin_disabled") {
      throw new HttpError(
        403,
        "admin_disabled",
        "admin endpoints are disabled: DATA_PROC_ADMIN_TOKEN is not set on this node",
      );
    }
    throw new HttpError(
      401,
      "unauthorized",
      reason === "missing_token"
        ? "missing Authorization: Bearer <admin token>"
        : "wrong admin token",
    );
  };

  return (action) => async (c, next) => {
    if (expected === undefined || expectedId === undefined) {
      return await refuse(c, action, "admin_disabled", null);
    }
    const peerSignature = c.req.header(PEER_SIGNATURE_HEADER);
    const fromNode = c.req.header(FORWARDED_HEADER);
    if (peerSignature !== undefined && fromNode !== undefined) {
      // A request a peer forwarded: signed with a key derived from the token, never the token.
      const valid = await verifyPeer(options.token, fromNode, c.req.method, c.req.path, {
        time: c.req.header(PEER_TIME_HEADER),
        signature: peerSignature,
      });
      if (!valid) return await refuse(c, action, "wrong_token", null);
      const caller = c.req.header(PEER_CALLER_HEADER);
      c.set("admin", {
        tokenId: caller && /^[0-9a-f]{8}$/.test(caller) ? caller : await expectedId,
        requestedBy: parseRequestedBy(c.req.header("x-requested-by")),
      });
      return await next();
    }
    const header = c.req.header("authorization");
    const match = header === undefined ? null : /^Bearer[ ]+(\S+)\s*$/i.exec(header);
    if (!match) return await refuse(c, action, "missing_token", null);
    const presented = await sha256(match[1]!);
    if (!timingSafeEqual(presented, await expected)) {
      return await refuse(c, action, "wrong_token", hex(presented).slice(0, 8));
    }
    c.set("admin", {
      tokenId: await expectedId,
      requestedBy: parseRequestedBy(c.req.header("x-requested-by")),
    });
    await next();
  };
}
