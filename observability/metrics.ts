/**
 * Prometheus metrics of CONTRACT.md. One registry per process; every metric is defined
 * here so names and labels stay in one table.
 */
import client from "prom-client";
import { LatencyHistogram } from "./latency_histogram.ts";

export const registry = new client.Registry();

/**
 * Finer around the 100 ms objective of the event path: a p99 interpolated within one bucket
 * from 100 to 250 ms can read up to 150 ms above the true value (docs/benchmarks.md, session 14).
 */
// deno-fmt-ignore
const LATENCY_BUCKETS = [1, 2, 5, 10, 25, 50, 75, 100, 150, 200, 250, 500, 1000, 2500, 5000, 10000, 30000];
const SECONDS_BUCKETS = LATENCY_BUCKETS.map((ms) => ms / 1000);

const flushSeconds = new client.Histogram({
  name: "data_processing_flush_duration_seconds",
  help: "Seconds to flush the owned partitions' dirty actors to every sink",
  buckets: SECONDS_BUCKETS,
  registers: [registry],
});

/** Counts of stored actor snapshots by kind, provided by the node (see setStoredActorsSource). */
export type StoredActorCounts = Record<string, number>;
let storedActorsSource: (() => Promise<StoredActorCounts | undefined>) | undefined;

/**
 * Sets where `data_processing_stored_actors` reads its values at scrape time (the node
 * passes a cached Redis SCAN count); undefined removes it.
 */
export function setStoredActorsSource(
  source: (() => Promise<StoredActorCounts | undefined>) | undefined,
): void {
  storedActorsSource = source;
}

/** The sinks a flush or publish writes to, as the `sink` label of sink failures. */
export type Sink = "kafka" | "clickhouse" | "redis";

/**
 * Counts a failed write to `sink` (the rejection passes through unchanged), so an outage
 * shows as a rate by sink instead of only as restarts.
 */
export async function countSinkFailure<T>(sink: Sink, write: Promise<T>): Promise<T> {
  try {
    return await write;
  } catch (err) {
    metrics.sinkFailures.labels(sink).inc();
    throw err;
  }
}

type OwnedFilter = (topic: string, partition: number) => boolean | undefined;
const ownedFilters: OwnedFilter[] = [];

/**
 * Adds a test of whether this node owns `topic[partition]` (true/false), or has no say
 * (undefined: the topic is not its stage's). At scrape time, per-partition gauges drop the
 * series of partitions some filter disowns, so a partition that moved is never reported by
 * two nodes. Returns a function removing the filter.
 */
export function addOwnedPartitionsFilter(filter: OwnedFilter): () => void {
  ownedFilters.push(filter);
  return () => {
    const at = ownedFilters.indexOf(filter);
    if (at >= 0) ownedFilters.splice(at, 1);
  };
}

/**
 * A gauge by topic and partition that remembers its series, so that at scrape time it can
 * drop those of partitions this node no longer owns (see addOwnedPartitionsFilter).
 */
export class PartitionGauge {
  readonly #gauge: client.Gauge<"topic" | "partition">;
  readonly #series = new Map<string, { topic: string; partition: number }>();

  constructor(name: string, help: string) {
    const prune = () => this.#pruneUnowned();
    this.#gauge = new client.Gauge({
      name,
      help,
      labelNames: ["topic", "partition"] as const,
      registers: [registry],
      collect() {
        prune();
      },
    });
  }

  set(topic: string, partition: number, value: number): void {
    this.#series.set(`${topic}:${partition}`, { topic, partition });
    this.#gauge.set({ topic, partition: String(partition) }, value);
  }

  /** prom-client's form (`labels(topic, partition).set(v)`), for callers written against it. */
  labels(topic: string, partition: string): { set(value: number): void } {
    return { set: (value) => this.set(topic, Number(partition), value) };
  }

  remove(topic: string, partition: number): void {
    if (!this.#series.delete(`${topic}:${partition}`)) return;
    this.#gauge.remove({ topic, partition: String(partition) });
  }

  /** The partitions it has a series for. */
  series(): { topic: string; partition: number }[] {
    return [...this.#series.values()];
  }

  #pruneUnowned(): void {
    for (const { topic, partition } of this.series()) {
      if (ownedFilters.some((owns) => owns(topic, partition) === false)) {
        this.remove(topic, partition);
      }
    }
  }
}

export const metrics = {
  /**
   * CONTRACT.md fixes this name (the platform's dashboards use it), so it keeps `_ms`; it is
   * the one name `promtool check metrics` flags ("abbreviated units"). Every other metric
   * here uses base units and passes the linter. Observed once per event: see
   * latency_histogram.ts.
   */
  processingLatency: new LatencyHistogram({
    name: "processing_latency_ms",
    help: "Milliseconds from Kafka append to the stage having applied the event",
    labelName: "stage",
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  /** Set on a timer by observability/lag_monitor.ts for the partitions this node owns. */
  consumerLag: new PartitionGauge(
    "data_processing_consumer_lag",
    "Messages between the partition's end offset and the consumer group's committed offset, for partitions this node owns",
  ),
  lastEventTime: new PartitionGauge(
    "data_processing_last_event_time_seconds",
    "Kafka timestamp (Unix seconds) of the newest record a stage has processed from a partition this node owns",
  ),
  sinkFailures: new client.Counter({
    name: "data_processing_sink_failures_total",
    help: "Failed writes to a sink (kafka, clickhouse, redis) while flushing or publishing",
    labelNames: ["sink"] as const,
    registers: [registry],
  }),
  buildInfo: new client.Gauge({
    name: "data_processing_build_info",
    help: "Always 1; the labels say which build runs: version, commit and Deno version",
    labelNames: ["version", "commit", "deno"] as const,
    registers: [registry],
  }),
  events: new client.Counter({
    name: "data_processing_events_total",
    help: "Events handled, by stage and outcome",
    labelNames: ["stage", "outcome"] as const,
    registers: [registry],
  }),
  dlq: new client.Counter({
    name: "data_processing_dlq_records_total",
    help: "Records sent to the DLQ, by stage and reason",
    labelNames: ["stage", "reason"] as const,
    registers: [registry],
  }),
  watermarkLag: new PartitionGauge(
    "data_processing_watermark_lag_ms",
    "Wall clock minus the event-time clock of a normalized partition, in milliseconds",
  ),
  lateEvents: new client.Counter({
    name: "data_processing_late_events_total",
    help: "Events older than their partition's event-time clock minus the allowed lateness",
    registers: [registry],
  }),
  liveActors: new client.Gauge({
    name: "data_processing_live_actors",
    help: "Actors held in memory, by kind",
    labelNames: ["kind"] as const,
    registers: [registry],
  }),
  passivations: new client.Counter({
    name: "data_processing_actor_passivations_total",
    help: "Actors passivated (state saved, memory freed), by kind",
    labelNames: ["kind"] as const,
    registers: [registry],
  }),
  sourceIdleTransitions: new client.Counter({
    name: "data_processing_source_idle_transitions_total",
    help:
      "Bronze source partitions turning idle or active again (event-time watermarks), by source topic and new state",
    labelNames: ["source_topic", "state"] as const,
    registers: [registry],
  }),
  actorRestarts: new client.Counter({
    name: "data_processing_actor_restarts_total",
    help: "Supervised restarts, by level (actor, partition, normalizer)",
    labelNames: ["level"] as const,
    registers: [registry],
  }),
  rebalances: new client.Counter({
    name: "data_processing_rebalances_total",
    help: "Consumer group assignments received, by consumer",
    labelNames: ["consumer"] as const,
    registers: [registry],
  }),
  /** Takes milliseconds (as measured by callers) and records seconds, the Prometheus base unit. */
  flushDuration: {
    observe(ms: number): void {
      flushSeconds.observe(ms / 1000);
    },
  },
  flushedActors: new client.Counter({
    name: "data_processing_flushed_actors_total",
    help: "Actor projections flushed",
    registers: [registry],
  }),
  fencedWrites: new client.Counter({
    name: "data_processing_fenced_writes_total",
    help: "Flushes refused because the partition moved to another owner",
    registers: [registry],
  }),
  storedActors: new client.Gauge({
    name: "data_processing_stored_actors",
    help:
      "Actor snapshots in Redis by kind, live or passivated, for the whole group (passivated = stored - live of every node)",
    labelNames: ["kind"] as const,
    registers: [registry],
    async collect() {
      const counts = await storedActorsSource?.();
      if (!counts) return;
      for (const [kind, n] of Object.entries(counts)) this.labels(kind).set(n);
    },
  }),
  adminActions: new client.Counter({
    name: "data_processing_admin_actions_total",
    help: "Admin HTTP actions, by action and outcome (ok, failed, refused)",
    labelNames: ["action", "outcome"] as const,
    registers: [registry],
  }),
  httpRequests: new client.Counter({
    name: "data_processing_http_requests_total",
    help: "HTTP requests answered, by method, matched route and status class",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  }),
  replayJobs: new client.Counter({
    name: "data_processing_replay_jobs_total",
    help: "Replay jobs, by outcome",
    labelNames: ["outcome"] as const,
    registers: [registry],
  }),
};
