/**
 * The one path every flush of the actor stage takes, in order, with nothing committed past
 * what was acknowledged:
 *
 *   plans (captured by each partition between two batches)
 *   -> fence check (a partition whose epoch moved writes nothing at all)
 *   -> sinks: Kafka outputs and DLQ records, ClickHouse gold rows (idempotent by id/version)
 *   -> per partition, one fenced Redis call: projections, snapshots, then the partition state
 *      with the offset they cover (a fenced call writes nothing)
 *   -> the offset commit, for the partitions still owned.
 *
 * A failure anywhere throws before any commit; the caller then rebuilds the partitions of the
 * plans from their stored state (their changes were taken), so nothing is lost or doubled.
 */
import type { Producer } from "kafkajs";
import { countSinkFailure } from "../observability/metrics.ts";
import type { ActorStore } from "../stores/actor_store.ts";
import { type ClickHouseClient, insertRows } from "../stores/clickhouse.ts";
import { type OutgoingMessage, sendChunked, type topicNames } from "../stores/kafka.ts";
import type { ActorOutputs } from "../actors/actor_kinds.ts";
import type { PartitionFlushPlan } from "./partition_supervisor.ts";

/** What a flush needs of a partition: where it is, which epoch it holds, whether it lives. */
export interface FlushedPartition {
  topic: string;
  partition: number;
  epoch: number;
  readonly alive: boolean;
}

export interface FlushSinks {
  producer: Producer;
  clickhouse: ClickHouseClient;
  store: ActorStore;
  topics: ReturnType<typeof topicNames>;
  goldDb: string;
  /** Commits offsets of the consumer group (after everything they cover was stored). */
  commit: (offsets: { topic: string; partition: number; offset: string }[]) => Promise<void>;
}

/** What writing outputs outside a flush needs: the Kafka producer and ClickHouse. */
export type OutputSinks = Pick<FlushSinks, "producer" | "clickhouse" | "topics" | "goldDb">;

export interface FlushOutcome<P extends FlushedPartition> {
  /** Plans stored whole (their offsets, if any, committed). */
  stored: { p: P; plan: PartitionFlushPlan }[];
  /** Partitions whose epoch moved: nothing of theirs was written. */
  fenced: { p: P; storedEpoch: number | null }[];
  /** When each phase ended, for the slow-flush report. */
  timings: { sunkMs: number };
}

export async function runFlush<P extends FlushedPartition>(
  sinks: FlushSinks,
  work: readonly { p: P; plan: PartitionFlushPlan }[],
): Promise<FlushOutcome<P>> {
  // A cheap fence check first: a partition that has moved writes nothing at all.
  const epochs = await countSinkFailure("redis", sinks.store.epochs(work.map(({ p }) => p)));
  const fenced: FlushOutcome<P>["fenced"] = [];
  const owned = work.filter(({ p }, i) => {
    if (epochs[i] === p.epoch) return true;
    fenced.push({ p, storedEpoch: epochs[i] ?? null });
    return false;
  });
  await writeSinks(sinks, owned.map((w) => w.plan));
  const sunkMs = performance.now();
  const stored: FlushOutcome<P>["stored"] = [];
  for (const { p, plan } of owned) {
    const ok = await countSinkFailure(
      "redis",
      sinks.store.fencedFlush(p.topic, p.partition, p.epoch, {
        projections: plan.outputs.projections.map((x) => ({
          ...x,
          key: sinks.store.keys.prefixed(x.key),
        })),
        snapshots: plan.snapshots,
      }),
    );
    if (ok) stored.push({ p, plan });
    else fenced.push({ p, storedEpoch: (await sinks.store.epochs([p]))[0] ?? null });
  }
  const commits = stored
    .filter(({ p, plan }) => plan.commitOffset !== null && p.alive)
    .map(({ p, plan }) => ({
      topic: p.topic,
      partition: p.partition,
      offset: String(plan.commitOffset),
    }));
  if (commits.length > 0) await sinks.commit(commits);
  for (const { p, plan } of stored) {
    if (plan.clockCheckpoint) {
      await sinks.store.addClockCheckpoint(p.topic, p.partition, plan.clockCheckpoint);
    }
  }
  return { stored, fenced, timings: { sunkMs } };
}

/**
 * Writes gold rows and Kafka outputs outside a flush: a replay's settled bars, written as it
 * rebuilds (idempotent by id and version, so writing them again is harmless).
 */
export function writeOutputs(sinks: OutputSinks, outputs: ActorOutputs): Promise<void> {
  return writeSinks(sinks, [{ outputs, dlq: [] }]);
}

/** Kafka outputs and DLQ records, and ClickHouse gold rows, of every plan at once. */
async function writeSinks(
  sinks: OutputSinks,
  plans: readonly Pick<PartitionFlushPlan, "outputs" | "dlq">[],
) {
  const topicOf = {
    bars: sinks.topics.bars,
    latestPrice: sinks.topics.latestPrice,
    curveSnapshot: sinks.topics.curveSnapshot,
  };
  const messages: OutgoingMessage[] = [];
  const barRows: Record<string, unknown>[] = [];
  const curveRows: Record<string, unknown>[] = [];
  for (const plan of plans) {
    for (const m of plan.outputs.messages) {
      messages.push({ topic: topicOf[m.topic], key: m.key, value: m.value });
    }
    for (const d of plan.dlq) {
      messages.push({ topic: sinks.topics.dlq, key: d.source_topic, value: JSON.stringify(d) });
    }
    for (const r of plan.outputs.barRows) barRows.push(r);
    for (const r of plan.outputs.curveRows) curveRows.push(r);
  }
  await Promise.all([
    countSinkFailure("kafka", sendChunked(sinks.producer, messages)),
    countSinkFailure("clickhouse", insertRows(sinks.clickhouse, `${sinks.goldDb}.bars`, barRows)),
    countSinkFailure(
      "clickhouse",
      insertRows(sinks.clickhouse, `${sinks.goldDb}.curves`, curveRows),
    ),
  ]);
}
