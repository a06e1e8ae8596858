/**
 * The normalizer supervisor: one Kafka consumer (group `<group>.normalizer`) over the two
 * Bronze topics; each owned partition's batches go through a stateless partition
 * normalizer (`normalizePartitionBatch`). A failing batch is a crash of that partition's
 * normalizer: it restarts from the last committed offset (nothing of the batch was
 * committed), heartbeating meanwhile, until the write succeeds, the partition is lost, or
 * the node stops. Backoff follows the partition's restart intensity (restart_policy.ts),
 * capped and jittered; past the intensity limit it is logged, never escalated: a store
 * outage, however long, is waited out, not turned into a node exit. A batch that a store
 * refuses twice the same way (`storeRefusal`: data too large for Kafka, values ClickHouse
 * cannot parse, too many partitions in one insert) is written in pieces instead
 * (`publishSplitting`), and what no store takes goes to the DLQ as `write_failed`; any other
 * error is an outage and only ever retried. A consumer that kafkajs gives up on is
 * restarted too.
 *
 * Offsets are committed (offset + 1) only after every output of the records up to that
 * offset (Silver topics, silver.* rows, DLQ records) is acknowledged.
 *
 * Event time: each acknowledged batch of a Bronze ticks partition raises that partition's
 * source watermark, and a writer loop puts the watermarks of the owned ticks partitions
 * into every partition of the normalized ticks topic (CONTRACT.md, "Event time").
 */
import type { Admin, Consumer, EachBatchPayload, Kafka } from "kafkajs";
import type { Config } from "../config/config.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";
import { withSpan } from "../observability/tracing.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import { topicNames } from "../stores/kafka.ts";
import type { Sql } from "../stores/postgres.ts";
import { createReferenceData } from "../stores/reference_data.ts";
import {
  type BronzeRecord,
  createNormalizedProducer,
  type NormalizationOutputs,
  NORMALIZE_STAGE,
  processRecords,
  publishOutputs,
  publishSplitting,
  storeRefusal,
} from "./normalization_pipeline.ts";
import { jitteredBackoffMs } from "../timing/backoff.ts";
import { RestartIntensity } from "./restart_policy.ts";
import { sleep } from "../timing/sleep.ts";
import { type SourceReport, SourceWatermarks } from "./source_watermarks.ts";
import { startWatermarkWriter, type WatermarkWriter } from "./watermark_writer.ts";

export interface NormalizerDeps {
  config: Config;
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  sql: Sql;
  logger: Logger;
  signal: AbortSignal;
}

export interface NormalizerHandle {
  /** Stops fetching, lets the batch in hand finish or give up uncommitted, leaves the group. */
  stop(): Promise<void>;
  /** True while the consumer has joined its group and has not crashed. */
  isReady(): boolean;
  /** The Bronze partitions this node owns in the group (empty while not joined). */
  assignment(): { topic: string; partition: number }[];
}

const RESTART_BACKOFF_MIN_MS = 200;
const RESTART_BACKOFF_MAX_MS = 10_000;
/** Partition normalizer restarts per window before it is reported as past its intensity. */
const PARTITION_MAX_RESTARTS = 10;
const PARTITION_RESTART_WINDOW_MS = 60_000;
/** Bronze partitions normalized in parallel on one node. */
const PARTITIONS_CONCURRENTLY = 4;

/** Starts the normalizer; throws if reference data or Kafka cannot be reached at start. */
export async function startNormalizer(deps: NormalizerDeps): Promise<NormalizerHandle> {
  const { config, kafka, logger: parentLogger } = deps;
  const maxBatch = config.DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE;
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    throw new RangeError(
      `Cannot start normalizer: DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE must be >= 1, got ${maxBatch}`,
    );
  }
  if (deps.signal.aborted) throw new Error("Cannot start normalizer: signal already aborted");
  const logger = parentLogger.child("normalizer");
  const stopping = new AbortController();
  const signal = AbortSignal.any([deps.signal, stopping.signal]);
  const topics = topicNames(config.DATA_PROC_TOPIC_PREFIX);
  const groupId = `${config.DATA_PROC_GROUP_ID}.normalizer`;

  const refdata = await createReferenceData(deps.sql, {
    refreshMs: config.DATA_PROC_REFDATA_REFRESH_MS,
    logger: logger.child("refdata"),
    signal,
  });
  const producer = createNormalizedProducer(kafka);
  const admin = kafka.admin();
  try {
    await producer.connect();
    await admin.connect();
  } catch (err) {
    await disconnectAll(logger, producer, admin);
    await refdata.close();
    throw err;
  }
  const sinks = {
    producer,
    clickhouse: deps.clickhouse,
    topics,
    silverDb: config.DATA_PROC_CLICKHOUSE_SILVER_DB,
    maxInsertRows: maxBatch,
  };

  const watermarks = new SourceWatermarks({
    idleAfterMs: config.DATA_PROC_IDLE_CLOSE_MS,
    onIdleChange: (change) => logIdleChange(logger, topics.bronzeTicks, change),
  });
  const writer: WatermarkWriter = startWatermarkWriter({
    producer,
    admin,
    topics,
    watermarks,
    intervalMs: config.DATA_PROC_WATERMARK_INTERVAL_MS,
    logger: logger.child("watermarks"),
    signal,
  });

  /** Restart intensity of each owned partition's normalizer (`topic:partition`). */
  const partitionRestarts = new Map<string, RestartIntensity>();
  const restartsOf = (topic: string, partition: number) => {
    const key = `${topic}:${partition}`;
    let intensity = partitionRestarts.get(key);
    if (intensity === undefined) {
      intensity = new RestartIntensity({
        maxRestarts: PARTITION_MAX_RESTARTS,
        windowMs: PARTITION_RESTART_WINDOW_MS,
      });
      partitionRestarts.set(key, intensity);
    }
    return intensity;
  };

  let consumer: Consumer | undefined;
  let joined = false;
  let assignment: { topic: string; partition: number }[] = [];
  let consumerRestarts = 0;
  let restartTimer: ReturnType<typeof setTimeout> | undefined;

  /** One stateless partition normalizer: normalize, publish, then commit, chunk by chunk. */
  const normalizePartitionBatch = async (payload: EachBatchPayload, c: Consumer) => {
    if (payload.batch.topic !== topics.bronzeTicks) return await normalizeChunks(payload, c);
    // A ticks partition with a batch in hand is not idle, however long the batch takes.
    watermarks.batchStarted(payload.batch.partition);
    try {
      await normalizeChunks(payload, c);
    } finally {
      watermarks.batchDone(payload.batch.partition);
    }
  };

  const normalizeChunks = async (payload: EachBatchPayload, c: Consumer) => {
    const { batch, heartbeat, resolveOffset, isRunning, isStale } = payload;
    const partitionLog = logger.child("partition", {
      topic: batch.topic,
      partition: batch.partition,
    });
    const lost = () => signal.aborted || !isRunning() || isStale();
    const restarts = restartsOf(batch.topic, batch.partition);
    for (let i = 0; i < batch.messages.length; i += maxBatch) {
      if (lost()) return; // unresolved: the next owner (or run) starts from the commit
      const chunk = batch.messages.slice(i, i + maxBatch);
      const records = chunk.map((m): BronzeRecord => ({
        topic: batch.topic,
        partition: batch.partition,
        offset: m.offset,
        key: m.key ?? null,
        value: m.value ?? null,
        timestampMs: Number(m.timestamp),
      }));
      const outputs = await withSpan(
        "normalize.batch",
        {
          "messaging.destination.name": batch.topic,
          "messaging.destination.partition.id": String(batch.partition),
          "messaging.batch.message_count": records.length,
        },
        () =>
          withRestarts(partitionLog, { heartbeat, lost, signal, restarts }, async (refused) => {
            const maxFutureSkewMs = config.DATA_PROC_MAX_FUTURE_SKEW_MS;
            if (refused !== undefined) {
              return await publishSplitting(records, {
                refdata,
                topics,
                maxFutureSkewMs,
                sinks,
                refused,
              });
            }
            const out = await processRecords(records, { refdata, topics, maxFutureSkewMs });
            await publishOutputs(out, sinks);
            return out;
          }),
      );
      if (outputs === undefined || lost()) return; // gave up uncommitted: redelivered later
      // Silver ticks acknowledged (publishOutputs resolved): only now may the watermark move.
      if (batch.topic === topics.bronzeTicks) {
        watermarks.acknowledged(
          batch.partition,
          outputs.ticks.map((t) => t.event_time_ms),
          Date.now(),
        );
      }
      countOutcomes(records, outputs);
      const last = chunk[chunk.length - 1]!.offset;
      resolveOffset(last);
      await c.commitOffsets([{
        topic: batch.topic,
        partition: batch.partition,
        offset: (BigInt(last) + 1n).toString(),
      }]);
      metrics.lastEventTime.set(batch.topic, batch.partition, newestTimestampMs(chunk) / 1000);
      await heartbeat();
    }
  };

  const startConsumer = async () => {
    const c = kafka.consumer({
      groupId,
      sessionTimeout: 30_000,
      heartbeatInterval: 3_000,
      maxWaitTimeInMs: 250, // bounds a quiet partition's batch by time
      allowAutoTopicCreation: false,
    });
    consumer = c;
    c.on(c.events.GROUP_JOIN, (e) => {
      joined = true;
      const owned = e.payload.memberAssignment;
      assignment = Object.entries(owned).flatMap(([topic, parts]) =>
        parts.map((partition) => ({ topic, partition }))
      );
      for (const key of partitionRestarts.keys()) {
        const at = key.lastIndexOf(":");
        const partition = Number(key.slice(at + 1));
        if (!(owned[key.slice(0, at)] ?? []).includes(partition)) partitionRestarts.delete(key);
      }
      watermarks.assign(e.payload.memberAssignment[topics.bronzeTicks] ?? [], Date.now());
      writer.refreshPartitions();
      metrics.rebalances.inc({ consumer: "normalizer" });
      logger.info("normalizer joined group", {
        groupId,
        memberId: e.payload.memberId,
        assignment: e.payload.memberAssignment,
      });
    });
    c.on(c.events.CRASH, (e) => {
      joined = false;
      assignment = [];
      watermarks.assign([], Date.now()); // its partitions may move: write for none until rejoined
      logger.error("normalizer consumer crashed", {
        error: e.payload.error,
        kafkajsRestarts: e.payload.restart,
      });
      // kafkajs restarts itself after retriable errors; otherwise the supervisor does.
      if (!e.payload.restart) scheduleConsumerRestart(c);
    });
    c.on(c.events.STOP, () => {
      joined = false;
      assignment = [];
      watermarks.assign([], Date.now());
    });
    await c.connect();
    await c.subscribe({ topics: [topics.bronzeTicks, topics.bronzeCurves], fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: PARTITIONS_CONCURRENTLY,
      eachBatch: (payload) => normalizePartitionBatch(payload, c),
    });
  };

  const scheduleConsumerRestart = (crashed: Consumer) => {
    if (signal.aborted) return;
    consumerRestarts += 1;
    metrics.actorRestarts.inc({ level: "normalizer" });
    const delay = jitteredBackoffMs(consumerRestarts, {
      baseMs: RESTART_BACKOFF_MIN_MS,
      capMs: RESTART_BACKOFF_MAX_MS,
    });
    logger.warn("restarting normalizer consumer", { attempt: consumerRestarts, delayMs: delay });
    restartTimer = setTimeout(async () => {
      restartTimer = undefined;
      await crashed.disconnect().catch(() => {});
      if (signal.aborted) return;
      try {
        await startConsumer();
        consumerRestarts = 0;
      } catch (err) {
        logger.error("normalizer consumer failed to start", { error: err });
        scheduleConsumerRestart(consumer ?? crashed);
      }
    }, delay);
  };

  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      stopping.abort();
      if (restartTimer !== undefined) clearTimeout(restartTimer);
      joined = false;
      await consumer?.disconnect().catch((err) =>
        logger.warn("normalizer consumer disconnect failed", { error: err })
      );
      await writer.done; // the signal stopped it; let an in-flight write finish first
      await disconnectAll(logger, producer, admin);
      await refdata.close();
      logger.info("normalizer stopped");
    })();
    return stopped;
  };
  deps.signal.addEventListener("abort", () => void stop(), { once: true });

  try {
    await startConsumer();
  } catch (err) {
    await stop();
    throw err;
  }
  logger.info("normalizer started", { groupId, topics: [topics.bronzeTicks, topics.bronzeCurves] });
  return { stop, isReady: () => joined && !signal.aborted, assignment: () => assignment };
}

/**
 * Runs `work` until it succeeds. Each failure counts as a restart of the partition
 * normalizer: back off (by its restart intensity, capped, jittered), heartbeat so the group
 * keeps the partition, and run again. Past the intensity limit the partition keeps
 * restarting at the capped backoff: nothing escalates, so a long outage never stops the
 * node. Once two failures in a row are the same store refusal, `work` is given that error
 * (`refused`) so it writes the batch in pieces. Returns undefined if the partition is lost
 * or the node stops meanwhile; a rebalance thrown by `heartbeat()` propagates to kafkajs.
 * Never skips the records.
 */
async function withRestarts<T>(
  logger: Logger,
  partition: {
    heartbeat: () => Promise<void>;
    lost: () => boolean;
    signal: AbortSignal;
    restarts: RestartIntensity;
  },
  work: (refused: unknown) => Promise<T>,
): Promise<T | undefined> {
  const { heartbeat, lost, signal, restarts } = partition;
  let previousRefusal: string | undefined;
  let refused: unknown = undefined;
  for (let attempt = 1;; attempt++) {
    try {
      return await work(refused);
    } catch (err) {
      metrics.actorRestarts.inc({ level: "normalizer" });
      const refusal = storeRefusal(err)?.code;
      if (refusal !== undefined && refusal === previousRefusal && refused === undefined) {
        logger.warn("batch refused twice the same way; writing it in pieces", { refusal });
      }
      // Split from the second same refusal on; an outage meanwhile keeps the split mode.
      if (refusal !== undefined && refusal === previousRefusal) refused = err;
      previousRefusal = refusal;
      const withinIntensity = restarts.record(Date.now());
      // The intensity's backoff (doubling per recent restart, capped), jittered.
      const delay = jitteredBackoffMs(1, {
        baseMs: restarts.backoffMs(RESTART_BACKOFF_MIN_MS, RESTART_BACKOFF_MAX_MS),
        capMs: RESTART_BACKOFF_MAX_MS,
      });
      logger.error("partition normalizer failed; restarting from the last commit", {
        error: err,
        attempt,
        delayMs: delay,
        ...(refusal === undefined ? {} : { refusal }),
        ...(withinIntensity ? {} : { restartIntensityExceeded: true }),
      });
      // Wait in heartbeat-sized steps so the session stays alive through long outages.
      for (let waited = 0; waited < delay; waited += 1000) {
        if (lost()) return undefined;
        await sleep(Math.min(1000, delay - waited), signal);
        await heartbeat();
      }
      if (lost()) return undefined;
    }
  }
}

/** Logs and counts a source partition turning idle or active again. */
function logIdleChange(logger: Logger, sourceTopic: string, change: SourceReport): void {
  const state = change.idle ? "idle" : "active";
  metrics.sourceIdleTransitions.inc({ source_topic: sourceTopic, state });
  logger.info(change.idle ? "source partition went idle" : "source partition active again", {
    source_topic: sourceTopic,
    source_partition: change.partition,
    watermark_ms: change.watermarkMs,
  });
}

async function disconnectAll(
  logger: Logger,
  producer: { disconnect(): Promise<void> },
  admin: Admin,
): Promise<void> {
  await producer.disconnect().catch((err) =>
    logger.warn("normalizer producer disconnect failed", { error: err })
  );
  await admin.disconnect().catch((err) =>
    logger.warn("normalizer admin disconnect failed", { error: err })
  );
}

function countOutcomes(records: readonly BronzeRecord[], outputs: NormalizationOutputs): void {
  const ok = outputs.ticks.length + outputs.curvePoints.length;
  if (ok > 0) metrics.events.inc({ stage: NORMALIZE_STAGE, outcome: "ok" }, ok);
  if (outputs.dlq.length > 0) {
    metrics.events.inc({ stage: NORMALIZE_STAGE, outcome: "dlq" }, outputs.dlq.length);
  }
  for (const d of outputs.dlq) metrics.dlq.inc({ stage: NORMALIZE_STAGE, reason: d.reason });
  const now = Date.now();
  for (const r of records) {
    metrics.processingLatency.observe({ stage: NORMALIZE_STAGE }, Math.max(0, now - r.timestampMs));
  }
}

function newestTimestampMs(messages: readonly { timestamp: string }[]): number {
  return messages.reduce((max, m) => Math.max(max, Number(m.timestamp)), 0);
}
