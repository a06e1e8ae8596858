/**
 * `data_processing_consumer_lag` on a timer: for each partition this node owns in a stage's
 * consumer group, the topic's end offset minus the group's committed offset (the log start
 * offset when nothing is committed yet). Read from the broker, not from the batches this
 * node happens to process, so a stuck consumer shows growing lag, as Kafka's own tools
 * would report it. The actor stage commits on snapshot flushes, so its lag also counts what
 * is applied but not yet committed (at most DATA_PROC_SNAPSHOT_INTERVAL_MS of input).
 *
 * Partitions the node no longer owns lose their series (lag, last event time, watermark
 * lag) at the next tick, and at once at scrape time through an owned-partitions filter, so
 * a moved partition is never counted by two nodes.
 */
import type { Admin } from "kafkajs";
import type { Logger } from "./logger.ts";
import { addOwnedPartitionsFilter, metrics } from "./metrics.ts";
import { sleep } from "../timing/sleep.ts";

/** Between two reads of the broker's offsets: a few per Prometheus scrape interval. */
export const LAG_INTERVAL_MS = 5000;

export interface OwnedPartition {
  topic: string;
  partition: number;
}

export interface LagMonitorOptions {
  admin: Pick<Admin, "fetchOffsets" | "fetchTopicOffsets">;
  groupId: string;
  /** The stage's topics: series of these topics are this monitor's to set and remove. */
  topics: readonly string[];
  /** The partitions this node owns in the group right now (empty while not joined). */
  owned: () => readonly OwnedPartition[];
  logger: Logger;
  signal: AbortSignal;
  intervalMs?: number;
}

export interface LagMonitor {
  /** Resolves when the loop has ended (after the signal aborted); its series are removed. */
  done: Promise<void>;
}

export function startLagMonitor(options: LagMonitorOptions): LagMonitor {
  const { topics, signal } = options;
  const intervalMs = options.intervalMs ?? LAG_INTERVAL_MS;
  const owns = (topic: string, partition: number): boolean | undefined => {
    if (!topics.includes(topic)) return undefined;
    return options.owned().some((o) => o.topic === topic && o.partition === partition);
  };
  const removeFilter = addOwnedPartitionsFilter(owns);
  let lastError: string | undefined;
  const done = (async () => {
    try {
      while (!signal.aborted) {
        try {
          await tick(options, owns);
          if (lastError !== undefined) options.logger.info("consumer lag readable again");
          lastError = undefined;
        } catch (err) {
          const message = (err as Error)?.message ?? String(err);
          // Once per distinct failure: the broker being away is reported by /ready too.
          if (message !== lastError) {
            options.logger.warn("cannot read consumer lag", { group: options.groupId, err });
          }
          lastError = message;
        }
        await sleep(intervalMs, signal);
      }
    } finally {
      removeFilter();
      removeSeries(topics, () => true);
    }
  })();
  return { done };
}

async function tick(
  options: LagMonitorOptions,
  owns: (topic: string, partition: number) => boolean | undefined,
): Promise<void> {
  removeSeries(options.topics, (topic, partition) => owns(topic, partition) === false);
  const owned = options.owned().filter((o) => options.topics.includes(o.topic));
  if (owned.length === 0) return;
  const wanted = [...new Set(owned.map((o) => o.topic))];
  const ends = new Map<string, { high: number; low: number }>();
  for (const topic of wanted) {
    for (const p of await options.admin.fetchTopicOffsets(topic)) {
      ends.set(`${topic}:${p.partition}`, { high: Number(p.high), low: Number(p.low) });
    }
  }
  const committed = new Map<string, number>();
  const groupOffsets = await options.admin.fetchOffsets({
    groupId: options.groupId,
    topics: wanted,
  });
  for (const { topic, partitions } of groupOffsets) {
    for (const p of partitions) committed.set(`${topic}:${p.partition}`, Number(p.offset));
  }
  // Ownership may have moved while the broker answered: set only what is still owned.
  for (const { topic, partition } of owned) {
    const end = ends.get(`${topic}:${partition}`);
    if (end === undefined || owns(topic, partition) !== true) continue;
    const position = committed.get(`${topic}:${partition}`) ?? -1;
    const from = position >= 0 ? Math.max(position, end.low) : end.low;
    metrics.consumerLag.set(topic, partition, Math.max(0, end.high - from));
  }
}

function removeSeries(
  topics: readonly string[],
  remove: (topic: string, partition: number) => boolean,
): void {
  for (const gauge of [metrics.consumerLag, metrics.lastEventTime, metrics.watermarkLag]) {
    for (const { topic, partition } of gauge.series()) {
      if (topics.includes(topic) && remove(topic, partition)) gauge.remove(topic, partition);
    }
  }
}
