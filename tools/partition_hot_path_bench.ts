/**
 * One partition's hot path in process (`deno bench -A tools/partition_hot_path_bench.ts`):
 * fetched records (bytes, as kafkajs hands them over) through decode, the key actors and the
 * flush's plan, with a real Redis behind the actor store (one revive per new key; the plan
 * writes nothing).
 * No broker and no other process shares the work, so the time per event is the node's own,
 * steadier than the end-to-end `deno task bench` on a machine that also runs Kafka.
 *
 * The records are one partition's share of the bench's stream: 834 instruments (a sixth of
 * 5,000), Zipf-skewed, a watermark record every 5,000 events, event time at 20k events/s.
 * - backlog: 60,000 events in fetched batches of 6,000 (a 2 MiB fetch), a plan per batch;
 * - live: 20,000 events in batches of 80 (what a fetch holds at 20k/s), one plan for the
 *   second they stand for, a snapshot every fifth.
 */
import { Buffer } from "node:buffer";
import type { KafkaMessage } from "kafkajs";
import { instrumentAdapter } from "../actors/kinds/instrument/machine.ts";
import { CONTROL_HEADER } from "../messages/watermark.ts";
import { isNormalizedTick, NormalizedTick } from "../messages/normalized_tick.ts";
import { createLogger } from "../observability/logger.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { PartitionSupervisor } from "../supervisors/partition_supervisor.ts";
import { TickStream } from "./bench_events.ts";
import { createRandom } from "./bronze_samples.ts";

const REDIS_URL = Deno.env.get("DATA_PROC_REDIS_URL") ?? "redis://127.0.0.1:6379/0";
const T0 = Date.UTC(2027, 0, 15, 10, 0, 0);
const EVENTS_PER_SECOND = 20_000;

const stream = new TickStream({
  random: createRandom(11), // seeded: every run reads the same records
  instruments: 834,
  skew: 1,
  partitions: 1,
  timeOf: (serial) => T0 + Math.floor(serial * 1000 / EVENTS_PER_SECOND),
});
let offset = 0;

/** The next `n` events (and the watermark records among them) as fetched records. */
function fetched(n: number): KafkaMessage[] {
  return stream.next(n).map((m) =>
    ({
      key: m.key === null ? null : Buffer.from(m.key),
      value: Buffer.from(m.value),
      timestamp: String(Date.now()),
      attributes: 0,
      offset: String(offset++),
      headers: m.headers ? { [CONTROL_HEADER]: Buffer.from(m.headers[CONTROL_HEADER]!) } : {},
    }) as KafkaMessage
  );
}

function batches(events: number, size: number): KafkaMessage[][] {
  return Array.from({ length: events / size }, () => fetched(size));
}

const redis = createRedis(REDIS_URL);
const store = new ActorStore(redis, redisKeys(`bench-hot-${crypto.randomUUID()}:`, "g"));
// As a node with the default settings runs it: 1m and 1h bars, 5 s lateness, 20 last events.
const partition = new PartitionSupervisor<NormalizedTick>({
  topic: "normalized.market.ticks.v1",
  partition: 0,
  epoch: 1,
  adapter: instrumentAdapter({
    windows: [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }],
    allowedLatenessMs: 5_000,
  }),
  schema: NormalizedTick,
  fastCheck: isNormalizedTick,
  keyOf: (t) => t.instrument_id,
  store,
  historySize: 20,
  now: () => Date.now(),
  logger: createLogger("bench"),
});
// Every key seen once first: the benches then measure actors that are already live.
for (const batch of batches(12_000, 6_000)) await partition.handle(batch);
await partition.plan({ snapshot: true });

Deno.bench({
  name: "backlog: 60,000 events, fetched batches of 6,000, a plan each",
  group: "partition",
  async fn(b) {
    const input = batches(60_000, 6_000);
    b.start();
    for (const batch of input) {
      await partition.handle(batch);
      await partition.plan({ snapshot: false });
    }
    b.end();
  },
});

let seconds = 0;
Deno.bench({
  name: "live: 20,000 events (1 s at 20k/s), batches of 80, one plan, a snapshot every 5th",
  group: "partition",
  async fn(b) {
    const input = batches(20_000, 80);
    b.start();
    for (const batch of input) await partition.handle(batch);
    await partition.plan({ snapshot: ++seconds % 5 === 0 });
    b.end();
  },
});

globalThis.addEventListener("unload", () => {
  void partition.stop();
  redis.disconnect();
});
