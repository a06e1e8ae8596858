import { strictEqual, throws } from "node:assert/strict";
import client from "prom-client";
import { LatencyHistogram } from "./latency_histogram.ts";

const BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];
const NAME = "processing_latency_ms";
const HELP = "Milliseconds from Kafka append to the stage having applied the event";

/** The same observations in prom-client's Histogram and in ours, each in its own registry. */
function both(observations: [string, number][]) {
  const promRegistry = new client.Registry();
  const prom = new client.Histogram({
    name: NAME,
    help: HELP,
    labelNames: ["stage"] as const,
    buckets: BUCKETS,
    registers: [promRegistry],
  });
  const oursRegistry = new client.Registry();
  const ours = new LatencyHistogram({
    name: NAME,
    help: HELP,
    labelName: "stage",
    buckets: BUCKETS,
    registers: [oursRegistry],
  });
  for (const [stage, ms] of observations) {
    prom.observe({ stage }, ms);
    ours.labels(stage).observe(ms);
  }
  return { promRegistry, oursRegistry, ours };
}

// Bounds themselves, between them, zero, past the last bound, fractions, two label values.
const OBSERVATIONS: [string, number][] = [
  ...[0, 0.5, 1, 1.5, 2, 5, 7, 10, 25, 26, 100, 999.9, 1000, 29999, 30000, 30001, 1e9].map(
    (ms): [string, number] => ["aggregate", ms],
  ),
  ["normalize", 3],
  ["normalize", 250],
  ["normalize", 40_000],
];

Deno.test("latency histogram: the same text exposition as prom-client's Histogram", async () => {
  const { promRegistry, oursRegistry } = both(OBSERVATIONS);
  strictEqual(await oursRegistry.metrics(), await promRegistry.metrics());
});

Deno.test("latency histogram: worker threads' series add up as prom-client's do", async () => {
  const half = Math.floor(OBSERVATIONS.length / 2);
  const prom = [both(OBSERVATIONS.slice(0, half)), both(OBSERVATIONS.slice(half))];
  const expected = await client.AggregatorRegistry.aggregate(
    await Promise.all(prom.map((t) => t.promRegistry.getMetricsAsJSON())) as never,
  ).metrics();
  const actual = await client.AggregatorRegistry.aggregate(
    await Promise.all(prom.map((t) => t.oursRegistry.getMetricsAsJSON())) as never,
  ).metrics();
  strictEqual(actual, expected);
});

Deno.test("latency histogram: observe by labels, reset, and a value that is not a number", async () => {
  const { oursRegistry, ours } = both([]);
  ours.observe({ stage: "aggregate" }, 7);
  const text = await oursRegistry.metrics();
  strictEqual(text.includes('processing_latency_ms_bucket{le="10",stage="aggregate"} 1'), true);
  strictEqual(text.includes('processing_latency_ms_count{stage="aggregate"} 1'), true);
  throws(() => ours.labels("aggregate").observe(NaN), TypeError);
  ours.reset();
  strictEqual((await oursRegistry.metrics()).includes("stage="), false);
});
