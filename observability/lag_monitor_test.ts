import { deepStrictEqual } from "node:assert/strict";
import { startLagMonitor } from "./lag_monitor.ts";
import { createLogger } from "./logger.ts";
import { metrics, registry } from "./metrics.ts";

/** `topic:partition value` of a metric's series on the registry's exposition. */
async function seriesOf(name: string): Promise<string[]> {
  const text = await registry.metrics();
  const re = new RegExp(`^${name}\\{topic="([^"]+)",partition="(\\d+)"\\} (\\S+)$`, "gm");
  return [...text.matchAll(re)].map((m) => `${m[1]}:${m[2]} ${m[3]}`).sort();
}

Deno.test("lag is end minus committed offset for owned partitions; unowned series go at scrape time", async () => {
  let owned = [{ topic: "t", partition: 0 }, { topic: "t", partition: 1 }, {
    topic: "t",
    partition: 2,
  }];
  const ticked: (() => void)[] = [];
  const admin = {
    fetchTopicOffsets: (_topic: string) =>
      Promise.resolve([
        { partition: 0, offset: "100", high: "100", low: "0" },
        { partition: 1, offset: "50", high: "50", low: "10" },
        { partition: 2, offset: "7", high: "7", low: "0" },
      ]),
    fetchOffsets: () => {
      ticked.shift()?.();
      return Promise.resolve([{
        topic: "t",
        partitions: [
          { partition: 0, offset: "60", metadata: null },
          { partition: 1, offset: "-1", metadata: null }, // nothing committed: from log start
          { partition: 2, offset: "7", metadata: null },
        ],
      }]);
    },
  };
  const abort = new AbortController();
  const monitor = startLagMonitor({
    // deno-lint-ignore no-explicit-any
    admin: admin as any,
    groupId: "g",
    topics: ["t"],
    owned: () => owned,
    logger: createLogger("test"),
    signal: abort.signal,
    intervalMs: 10,
  });
  try {
    await new Promise<void>((r) => ticked.push(r));
    await new Promise<void>((r) => ticked.push(r)); // one full tick has set the gauges
    metrics.lastEventTime.set("t", 2, 1234);
    metrics.watermarkLag.labels("t", "2").set(99);
    metrics.lastEventTime.set("other", 0, 1); // another stage's topic: not this monitor's
    deepStrictEqual(await seriesOf("data_processing_consumer_lag"), ["t:0 40", "t:1 40", "t:2 0"]);
    // Partition 2 moves away: its series go at the next scrape, before any tick.
    owned = owned.filter((o) => o.partition !== 2);
    deepStrictEqual(await seriesOf("data_processing_consumer_lag"), ["t:0 40", "t:1 40"]);
    deepStrictEqual(await seriesOf("data_processing_last_event_time_seconds"), ["other:0 1"]);
    deepStrictEqual(await seriesOf("data_processing_watermark_lag_ms"), []);
  } finally {
    abort.abort();
    await monitor.done;
    metrics.lastEventTime.remove("other", 0);
  }
  // Stopped: the monitor's series are gone.
  deepStrictEqual(await seriesOf("data_processing_consumer_lag"), []);
});
