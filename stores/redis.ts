/** Redis client factory (ioredis). */
import { Redis } from "ioredis";

export type { Redis };

export function createRedis(url: string, options: { lazy?: boolean } = {}): Redis {
  return new Redis(url, {
    lazyConnect: options.lazy ?? false,
    maxRetriesPerRequest: 2,
    // A Redis that stalls (no answer, no refusal) fails commands instead of holding flushes,
    // claims and HTTP answers forever.
    commandTimeout: 10_000,
    enableOfflineQueue: true,
    retryStrategy: (times) => Math.min(times * 200, 2000),
  });
}

/**
 * Closes a client and waits until its socket has ended, so no timer or socket of it is left
 * behind (a plain disconnect() returns before the socket closes).
 */
export async function closeRedis(redis: Redis, timeoutMs = 2000): Promise<void> {
  if (redis.status === "end") return;
  if (redis.status !== "ready") {
    redis.disconnect(); // never connected (or reconnecting): nothing to wait for
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ended = new Promise<void>((resolve) => {
    redis.once("end", () => resolve());
    timer = setTimeout(resolve, timeoutMs);
  });
  redis.disconnect();
  await ended;
  clearTimeout(timer);
}
