/**
 * Writes the normalizer's source watermarks in-band (CONTRACT.md, "Event time"): every
 * `intervalMs`, one watermark record per owned Bronze ticks partition into EVERY partition
 * of the normalized ticks topic (explicit `partition`, never by key), acks from all in-sync
 * replicas. Values come only from `SourceWatermarks`, which acknowledged batches alone
 * raise, so a record is never written before the Silver events it covers.
 *
 * Partition counts come from topic metadata, cached; re-read after an assignment and every
 * `METADATA_REFRESH_MS` so added partitions get records too.
 */
import type { Admin, Message, Producer } from "kafkajs";
import { CONTROL_HEADER, WATERMARK_CONTROL, type WatermarkRecord } from "../messages/watermark.ts";
import type { Logger } from "../observability/logger.ts";
import type { Topics } from "../stores/kafka.ts";
import { sleep } from "../timing/sleep.ts";
import type { SourceReport, SourceWatermarks } from "./source_watermarks.ts";

const METADATA_REFRESH_MS = 60_000;

export interface WatermarkWriterOptions {
  producer: Producer;
  /** For partition counts of the normalized and the Bronze ticks topics. */
  admin: Admin;
  topics: Topics;
  watermarks: SourceWatermarks;
  /** DATA_PROC_WATERMARK_INTERVAL_MS */
  intervalMs: number;
  logger: Logger;
  /** Stops the loop; `done` resolves once an in-flight write has finished. */
  signal: AbortSignal;
}

export interface WatermarkWriter {
  /** Re-reads partition counts before the next write (call on an assignment). */
  refreshPartitions(): void;
  /** Resolves when the loop has stopped. */
  done: Promise<void>;
}

interface PartitionCounts {
  normalized: number;
  source: number;
}

/** Starts the write loop; it runs until `signal` aborts and never throws. */
export function startWatermarkWriter(options: WatermarkWriterOptions): WatermarkWriter {
  const { intervalMs, signal, logger } = options;
  if (!Number.isInteger(intervalMs) || intervalMs < 1) {
    throw new RangeError(
      `Cannot start watermark writer: intervalMs must be an integer >= 1, got ${intervalMs}`,
    );
  }
  let counts: PartitionCounts | undefined;
  let countsAtMs = 0;
  let stale = true;

  const writeOnce = async () => {
    if (stale || Date.now() - countsAtMs >= METADATA_REFRESH_MS) {
      stale = false; // set before the await: an assignment meanwhile asks again
      counts = await fetchPartitionCounts(options.admin, options.topics);
      countsAtMs = Date.now();
    }
    const reports = options.watermarks.report(Date.now());
    if (counts === undefined || reports.length === 0) return;
    await options.producer.send({
      topic: options.topics.normalizedTicks,
      acks: -1,
      messages: watermarkMessages(reports, {
        sourceTopic: options.topics.bronzeTicks,
        sourcePartitions: counts.source,
        targetPartitions: counts.normalized,
        wallMs: Date.now(),
      }),
    });
  };

  const loop = async () => {
    while (!signal.aborted) {
      const started = Date.now();
      try {
        await writeOnce();
      } catch (err) {
        // Nothing is committed on a watermark: the next round writes the latest value.
        stale = true;
        logger.warn("watermark write failed; retrying next interval", { error: err });
      }
      await sleep(Math.max(0, intervalMs - (Date.now() - started)), signal);
    }
  };

  return {
    refreshPartitions: () => {
      stale = true;
    },
    done: loop(),
  };
}

/** Partition counts of the normalized and the Bronze ticks topics; throws if one is missing. */
async function fetchPartitionCounts(admin: Admin, topics: Topics): Promise<PartitionCounts> {
  const { topics: meta } = await admin.fetchTopicMetadata({
    topics: [topics.normalizedTicks, topics.bronzeTicks],
  });
  const count = (name: string) => {
    const n = meta.find((t) => t.name === name)?.partitions.length ?? 0;
    if (n < 1) throw new Error(`topic ${name} has no partitions in the metadata`);
    return n;
  };
  return { normalized: count(topics.normalizedTicks), source: count(topics.bronzeTicks) };
}

/**
 * The Kafka messages for `reports`: each report once per target partition. Key null: a control
 * record belongs to no instrument, and routing is by the explicit `partition`.
 */
export function watermarkMessages(
  reports: readonly SourceReport[],
  options: {
    sourceTopic: string;
    sourcePartitions: number;
    targetPartitions: number;
    wallMs: number;
  },
): Message[] {
  const messages: Message[] = [];
  for (const r of reports) {
    const record: WatermarkRecord = {
      type: "watermark",
      source_topic: options.sourceTopic,
      source_partition: r.partition,
      watermark_ms: r.watermarkMs,
      idle: r.idle,
      wall_ms: options.wallMs,
      source_partitions: options.sourcePartitions,
    };
    const value = JSON.stringify(record);
    for (let partition = 0; partition < options.targetPartitions; partition++) {
      messages.push({
        partition,
        key: null,
        value,
        headers: { [CONTROL_HEADER]: WATERMARK_CONTROL },
      });
    }
  }
  return messages;
}
