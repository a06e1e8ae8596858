/**
 * The source of `data_processing_stored_actors`: actor snapshots in Redis per kind, counted
 * with SCAN at most once per `maxAgeMs` (a scrape never waits for more than the first
 * count; later scrapes get the last count while a new one runs in the background).
 */
import type { StoredActorCounts } from "../observability/metrics.ts";
import type { Redis } from "./redis.ts";

export function storedActorCounter(
  redis: Redis,
  patterns: Record<string, string>,
  options: { maxAgeMs?: number; now?: () => number; onError?: (err: unknown) => void } = {},
): () => Promise<StoredActorCounts | undefined> {
  const maxAgeMs = options.maxAgeMs ?? 30_000;
  const now = options.now ?? Date.now;
  let last: StoredActorCounts | undefined;
  let countedAt = -Infinity;
  let running: Promise<void> | undefined;

  const count = async () => {
    const counts: StoredActorCounts = {};
    for (const [kind, pattern] of Object.entries(patterns)) {
      let n = 0;
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000);
        cursor = next;
        n += keys.length;
      } while (cursor !== "0");
      counts[kind] = n;
    }
    last = counts;
    countedAt = now();
  };

  return async () => {
    if (now() - countedAt >= maxAgeMs && running === undefined) {
      running = count().catch((err) => options.onError?.(err)).finally(() => {
        running = undefined;
      });
    }
    if (last === undefined && running) await running;
    return last;
  };
}
