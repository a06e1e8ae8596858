/**
 * One /metrics for a node that runs worker threads: each thread has its own registry, and
 * the main thread adds theirs to its own (prom-client's cluster aggregation). Counters,
 * histograms and per-partition gauges add up (each thread owns other partitions and other
 * actors); what every thread reads from the one process or the one group is taken once.
 */
import client from "prom-client";

export type MetricsJson = Awaited<ReturnType<client.Registry["getMetricsAsJSON"]>>;

/** Metrics every thread reports the same value of: the main thread's is kept. */
function sharedValue(name: string): boolean {
  return name.startsWith("process_") || name === "nodejs_version_info" ||
    name === "data_processing_build_info" || name === "data_processing_stored_actors";
}

/** The text exposition of the main thread's metrics (first) and the workers'. */
export async function aggregatedMetrics(threads: MetricsJson[]): Promise<string> {
  for (const metrics of threads) {
    for (const metric of metrics as { name: string; aggregator: string }[]) {
      if (sharedValue(metric.name)) metric.aggregator = "first";
      // The slowest thread's loop is the one that delays its partitions; the fullest heap is
      // the one that runs out first.
      else if (
        metric.name.startsWith("nodejs_eventloop_lag") ||
        metric.name === "data_processing_heap_used_ratio"
      ) metric.aggregator = "max";
    }
  }
  return await client.AggregatorRegistry.aggregate(threads as never).metrics();
}
