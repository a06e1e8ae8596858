/**
 * The worker thread a replay rebuilds its keys in (supervisors/replay_rebuild.ts), one per
 * replay share: its own V8 isolate, so the rebuild's decoding, actors and garbage (major GC
 * pauses of 100-320 ms on the shared thread) never stall the live keys. It has its own Kafka
 * client and ClickHouse client for reading the log and writing final bars; version bases come
 * from the thread that owns the partitions, which swaps the rebuilt keys in.
 */
/// <reference lib="deno.worker" />
import type { ActorOutputs } from "../actors/actor_kinds.ts";
import type { Config } from "../config/config.ts";
import { metrics, type Sink } from "../observability/metrics.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka, createProducer, topicNames } from "../stores/kafka.ts";
import { writeOutputs } from "./flush_path.ts";
import type { ReplayProgress } from "./replay_spec.ts";
import { rebuildFromLog, type RebuildRequest, type RebuildResult } from "./replay_rebuild.ts";

export type ToRebuildWorker =
  | { type: "start"; config: Config; clientId: string; request: RebuildRequest }
  | { type: "bases"; id: number; bases: [string, number][] }
  /** The owner's count of live batches applied (the rebuild rests longer while it moves). */
  | { type: "live"; batches: number }
  | { type: "cancel" };

export type FromRebuildWorker =
  | { type: "bases"; id: number; partition: number; keys: string[] }
  | { type: "progress"; progress: ReplayProgress }
  /** Failed sink writes this isolate counted: its own registry is not the node's /metrics. */
  | { type: "sinkFailures"; sink: Sink; count: number }
  | { type: "done"; result: RebuildResult }
  | { type: "failed"; message: string };

const post = (message: FromRebuildWorker) => self.postMessage(message);
const cancel = new AbortController();
const pendingBases = new Map<number, (bases: [string, number][]) => void>();
let nextId = 0;
let liveBatches = 0;
let lastProgressAt = 0;
const PROGRESS_EVERY_MS = 200;
/** The sink failures already reported to the owner, by sink. */
const reportedFailures = new Map<Sink, number>();

/** Tells the owner of the sink failures counted here since the last report. */
async function reportSinkFailures(): Promise<void> {
  for (const { labels, value } of (await metrics.sinkFailures.get()).values) {
    const sink = labels.sink as Sink;
    const count = value - (reportedFailures.get(sink) ?? 0);
    if (count > 0) post({ type: "sinkFailures", sink, count });
    reportedFailures.set(sink, value);
  }
}

async function run(config: Config, clientId: string, request: RebuildRequest): Promise<void> {
  const kafka = createKafka(config.DATA_PROC_KAFKA_BOOTSTRAP, clientId);
  // As the actor stage's producer: bars keyed by instrument land where its own do.
  const producer = createProducer(kafka, {
    idempotent: false,
    maxInFlightRequests: 5,
  });
  const clickhouse = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  const sinks = {
    producer,
    clickhouse,
    topics: topicNames(config.DATA_PROC_TOPIC_PREFIX),
    goldDb: config.DATA_PROC_CLICKHOUSE_GOLD_DB,
  };
  let outcome: FromRebuildWorker;
  try {
    await producer.connect();
    const result = await rebuildFromLog({
      config,
      kafka,
      versionBases: (partition, keys) => {
        const id = nextId++;
        const answer = new Promise<[string, number][]>((resolve) => pendingBases.set(id, resolve));
        post({ type: "bases", id, partition, keys });
        return answer.then((bases) => new Map(bases));
      },
      writeSettled: (outputs: ActorOutputs) =>
        writeOutputs(sinks, outputs).catch(async (err) => {
          await reportSinkFailures();
          throw err;
        }),
      liveBatches: () => liveBatches,
      onProgress: (progress) => {
        // A progress report costs the owner a job record write: a few a second are enough.
        const now = performance.now();
        const between = progress.recordsRead > 0 && progress.recordsRead < progress.recordsTotal;
        if (between && now - lastProgressAt < PROGRESS_EVERY_MS) return;
        lastProgressAt = now;
        post({ type: "progress", progress });
      },
      signal: cancel.signal,
    }, request);
    outcome = { type: "done", result };
  } catch (err) {
    outcome = { type: "failed", message: err instanceof Error ? err.message : String(err) };
  } finally {
    await producer.disconnect().catch(() => {});
    await clickhouse.close().catch(() => {});
  }
  post(outcome);
}

self.onmessage = (e: MessageEvent<ToRebuildWorker>) => {
  const message = e.data;
  if (message.type === "start") void run(message.config, message.clientId, message.request);
  else if (message.type === "bases") {
    pendingBases.get(message.id)?.(message.bases);
    pendingBases.delete(message.id);
  } else if (message.type === "live") liveBatches = message.batches;
  else if (message.type === "cancel") cancel.abort(new Error("replay cancelled"));
};
