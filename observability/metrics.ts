/**
 * Prometheus metrics of CONTRACT.md. One registry per process; every metric is defined
 * here so names and labels stay in one table.
 */
import client from "prom-client";

export const registry = new client.Registry();

const LATENCY_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];

export const metrics = {
  processingLatency: new client.Histogram({
    name: "processing_latency_ms",
    help: "Milliseconds from Kafka append to the stage having applied the event",
    labelNames: ["stage"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
  consumerLag: new client.Gauge({
    name: "data_processing_consumer_lag",
    help: "Messages between the partition's high watermark and the last processed offset",
    labelNames: ["topic", "partition"] as const,
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
  lateEvents: new client.Counter({
    name: "data_processing_late_events_total",
    help: "Events older than the instrument clock minus the allowed lateness",
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
  flushDuration: new client.Histogram({
    name: "data_processing_flush_duration_ms",
    help: "Milliseconds to flush one partition's dirty actors to every sink",
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  }),
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
  replayJobs: new client.Counter({
    name: "data_processing_replay_jobs_total",
    help: "Replay jobs, by outcome",
    labelNames: ["outcome"] as const,
    registers: [registry],
  }),
};
