/**
 * A bound on the reads anyone can send: listing keys scans every snapshot, a cluster-wide
 * read asks every peer, the status page reads Redis. One token bucket per node for every GET
 * except the probes (`/health`, `/ready`, `/metrics`), so a flood of reads gets 429 with
 * `Retry-After` instead of taking the node's event loop and Redis from the data path.
 */
import type { MiddlewareHandler } from "hono";
import { HttpError } from "./errors.ts";

const PROBES = new Set(["/health", "/ready", "/metrics"]);

export class TokenBucket {
  #tokens: number;
  #at: number;

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    readonly now: () => number = () => performance.now(),
  ) {
    this.#tokens = burst;
    this.#at = now();
  }

  /** Takes one token; returns 0 when taken, else the ms until one is available. */
  take(): number {
    const now = this.now();
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.perSecond) / 1000);
    this.#at = now;
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) * 1000) / this.perSecond);
  }
}

/** `perSecond` reads a second (bursts of twice that); 0 disables the limit. */
export function readLimit(perSecond: number): MiddlewareHandler {
  const bucket = perSecond > 0 ? new TokenBucket(perSecond, 2 * perSecond) : null;
  return async (c, next) => {
    if (bucket && c.req.method === "GET" && !PROBES.has(c.req.path)) {
      const waitMs = bucket.take();
      if (waitMs > 0) {
        c.header("Retry-After", String(Math.ceil(waitMs / 1000)));
        throw new HttpError(429, "rate_limited", `too many reads; retry in ${waitMs} ms`);
      }
    }
    await next();
  };
}
