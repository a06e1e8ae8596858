/**
 * `deno task dlq:reprocess`: reads DLQ records in an offset range of one partition and runs
 * their original Bronze bytes through the same pipeline as live records
 * (supervisors/normalization_pipeline.ts), as if they had just arrived: those that now
 * normalize go to the Silver topics and silver.*, those that still fail go to the DLQ again
 * (with their original source topic, partition and offset). The run is recorded in audit_log.
 *
 * Reading uses a throwaway consumer group that commits nothing, so a range can be
 * reprocessed any number of times; repeats collapse by event_id downstream.
 */
import { Buffer } from "node:buffer";
import { parseArgs } from "node:util";
import type { Kafka, KafkaMessage } from "kafkajs";
import { type Config, ConfigError, loadConfigFromEnv } from "../config/config.ts";
import { decodeJson } from "../messages/decode.ts";
import { DlqReason, DlqRecord } from "../messages/dlq_record.ts";
import { createLogger } from "../observability/logger.ts";
import { recordAudit } from "../stores/audit_log.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka, topicNames, type Topics } from "../stores/kafka.ts";
import { createPostgres } from "../stores/postgres.ts";
import { createReferenceData } from "../stores/reference_data.ts";
import {
  type BronzeRecord,
  createNormalizedProducer,
  NORMALIZE_STAGE,
  processRecords,
  publishOutputs,
} from "../supervisors/normalization_pipeline.ts";
import { EXIT_FAILED, runCli } from "./cli_run.ts";

const HELP = `Usage: deno task dlq:reprocess --partition P --start-offset A --end-offset B [options]

Reads DLQ records at offsets A..B (both included) of one partition and runs their original
bytes through normalization again, as if they had just arrived. Records that now succeed
flow to the Silver topics and silver.*; records that still fail go to the DLQ again.

Options:
  --topic T          DLQ topic to read (default: dlq.data-processing.v1 with DATA_PROC_TOPIC_PREFIX)
  --partition P      partition of the DLQ topic (required)
  --start-offset A   first offset to read (required)
  --end-offset B     last offset to read, included (required; clamped to the partition's end)
  --reason R         only records with this reason (${DlqReason.options.join(", ")})
  --actor NAME       who runs it, for audit_log (default: cli:$USER)
  --help             show this help

Progress ("x of N offsets") goes to stderr; the summary (JSON) to stdout.

Exit codes: 0 done (records that failed again are in the DLQ), 2 bad arguments or
configuration, 3 a store or the broker failed (nothing is lost; run again).`;

export interface ReprocessArgs {
  topic: string | undefined;
  partition: number;
  startOffset: bigint;
  endOffset: bigint;
  reason: DlqReason | undefined;
  actor: string;
}

/** Parses and checks the arguments; throws RangeError with a clear message on bad input. */
export function parseReprocessArgs(argv: string[], defaultActor: string): ReprocessArgs | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      topic: { type: "string" },
      partition: { type: "string" },
      "start-offset": { type: "string" },
      "end-offset": { type: "string" },
      reason: { type: "string" },
      actor: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return "help";
  const integer = (name: string, text: string | undefined): bigint => {
    if (text === undefined) throw new RangeError(`--${name} is required`);
    if (!/^\d+$/.test(text)) {
      throw new RangeError(`--${name} must be an integer >= 0, got "${text}"`);
    }
    return BigInt(text);
  };
  const partition = integer("partition", values.partition);
  const startOffset = integer("start-offset", values["start-offset"]);
  const endOffset = integer("end-offset", values["end-offset"]);
  if (partition > 1_000_000n) throw new RangeError(`--partition is too large: ${partition}`);
  if (endOffset < startOffset) {
    throw new RangeError(
      `--end-offset (${endOffset}) must be >= --start-offset (${startOffset})`,
    );
  }
  let reason: DlqReason | undefined;
  if (values.reason !== undefined) {
    const parsed = DlqReason.safeParse(values.reason);
    if (!parsed.success) {
      throw new RangeError(
        `--reason must be one of ${DlqReason.options.join(", ")}, got "${values.reason}"`,
      );
    }
    reason = parsed.data;
  }
  if (values.topic !== undefined && values.topic.trim() === "") {
    throw new RangeError("--topic must not be empty");
  }
  if (values.actor !== undefined && values.actor.trim() === "") {
    throw new RangeError("--actor must not be empty");
  }
  return {
    topic: values.topic,
    partition: Number(partition),
    startOffset,
    endOffset,
    reason,
    actor: values.actor ?? defaultActor,
  };
}

export interface ReprocessSummary {
  topic: string;
  partition: number;
  start_offset: string;
  /** The last offset actually read (the requested end, clamped to the partition's end). */
  end_offset: string;
  read: number;
  reprocessed_ok: number;
  failed_again: number;
  failed_again_by_reason: Record<string, number>;
  skipped_by_filter: number;
  /** Not a DLQ envelope, from another stage, or from a topic that is not Bronze here. */
  skipped_not_reprocessable: number;
}

/** Checks the range against the partition's retained offsets; returns the clamped end. */
async function resolveRange(kafka: Kafka, topic: string, args: ReprocessArgs) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const existing = await admin.listTopics();
    if (!existing.includes(topic)) throw new RangeError(`--topic ${topic} does not exist`);
    const offsets = await admin.fetchTopicOffsets(topic);
    const p = offsets.find((o) => o.partition === args.partition);
    if (!p) {
      throw new RangeError(
        `--partition ${args.partition} does not exist in ${topic} (0..${offsets.length - 1})`,
      );
    }
    const low = BigInt(p.low);
    const high = BigInt(p.high);
    if (args.startOffset < low && args.startOffset < high) {
      throw new RangeError(
        `--start-offset ${args.startOffset} is below the earliest retained offset ${low}`,
      );
    }
    // Clamp to the end as of now: records this run adds to the DLQ are never re-read.
    return args.endOffset < high - 1n ? args.endOffset : high - 1n;
  } finally {
    await admin.disconnect();
  }
}

/** Turns DLQ messages into Bronze records to reprocess, counting what is skipped. */
function selectRecords(
  messages: KafkaMessage[],
  topics: Topics,
  reason: DlqReason | undefined,
  summary: ReprocessSummary,
): BronzeRecord[] {
  const records: BronzeRecord[] = [];
  for (const m of messages) {
    summary.read += 1;
    const decoded = decodeJson(DlqRecord, m.value ?? null);
    if (!decoded.ok) {
      summary.skipped_not_reprocessable += 1;
      continue;
    }
    const d = decoded.value;
    if (reason !== undefined && d.reason !== reason) {
      summary.skipped_by_filter += 1;
      continue;
    }
    const bronze = d.source_topic === topics.bronzeTicks || d.source_topic === topics.bronzeCurves;
    if (d.stage !== NORMALIZE_STAGE || !bronze) {
      summary.skipped_not_reprocessable += 1;
      continue;
    }
    records.push({
      topic: d.source_topic,
      partition: d.source_partition,
      offset: String(d.source_offset),
      key: d.key_b64 === null ? null : new Uint8Array(Buffer.from(d.key_b64, "base64")),
      value: d.value_b64 === null ? null : new Uint8Array(Buffer.from(d.value_b64, "base64")),
      // The Bronze append time is not in the envelope; its first failure is the closest.
      timestampMs: d.failed_at_ms,
    });
  }
  return records;
}

/** Where a run is in its range: offsets passed so far and offsets in the range. */
export interface ReprocessPosition {
  done: number;
  total: number;
}

/**
 * Reprocesses the range, reading each record once; throws on a store or broker failure (after
 * writing nothing wrong). Ends when the read position passes the range's end, which is clamped
 * to the partition's high watermark at start.
 */
export async function reprocessDlqRange(
  config: Config,
  args: ReprocessArgs,
  signal: AbortSignal,
  progress: (summary: ReprocessSummary, position: ReprocessPosition) => void = () => {},
): Promise<ReprocessSummary> {
  const topics = topicNames(config.DATA_PROC_TOPIC_PREFIX);
  const topic = args.topic ?? topics.dlq;
  const kafka = createKafka(config.DATA_PROC_KAFKA_BOOTSTRAP, "dlq-reprocess");
  const end = await resolveRange(kafka, topic, args);
  const summary: ReprocessSummary = {
    topic,
    partition: args.partition,
    start_offset: String(args.startOffset),
    end_offset: String(end),
    read: 0,
    reprocessed_ok: 0,
    failed_again: 0,
    failed_again_by_reason: {},
    skipped_by_filter: 0,
    skipped_not_reprocessable: 0,
  };
  if (end < args.startOffset) return summary;

  const logger = createLogger("dlq-reprocess");
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  const clickhouse = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  const producer = createNormalizedProducer(kafka);
  const consumer = kafka.consumer({
    groupId: `${config.DATA_PROC_GROUP_ID}.dlq-reprocess.${crypto.randomUUID()}`,
    maxWaitTimeInMs: 250,
  });
  let refdata: Awaited<ReturnType<typeof createReferenceData>> | undefined;
  try {
    refdata = await createReferenceData(sql, {
      refreshMs: config.DATA_PROC_REFDATA_REFRESH_MS,
      logger,
      signal,
    });
    const lookup = refdata;
    await producer.connect();
    const sinks = {
      producer,
      clickhouse,
      topics,
      silverDb: config.DATA_PROC_CLICKHOUSE_SILVER_DB,
      maxInsertRows: config.DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE,
    };
    const maxBatch = config.DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE;
    const finished = Promise.withResolvers<void>();
    // Awaited below; this keeps a failure during connect from being an unhandled rejection.
    finished.promise.catch(() => {});
    const onAbort = () => finished.reject(new Error("interrupted"));
    signal.addEventListener("abort", onAbort, { once: true });
    // The next offset to read: every record below it was handled (or is not a record).
    let next = args.startOffset;
    let done = false;
    const total = Number(end - args.startOffset + 1n);
    const position = (): ReprocessPosition => ({
      done: Number((next > end ? end + 1n : next) - args.startOffset),
      total,
    });
    /**
     * A fetch from the current position up to raw offset `last` (control records included)
     * was handled: its records in the range were processed, the rest is not data (control
     * records, offsets no longer in the log) or past the range.
     */
    const passed = (last: string) => {
      if (BigInt(last) >= next) next = BigInt(last) + 1n;
    };
    const finishIfPassedEnd = () => {
      if (!done && next > end) {
        done = true;
        finished.resolve();
      }
    };
    // A fetch holding only control records (transaction markers) never reaches eachBatch.
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (done || payload.partition !== args.partition || payload.batchSize !== 0) return;
      passed(payload.lastOffset);
      finishIfPassedEnd();
    });
    // A crash kafkajs does not restart from would otherwise leave the run waiting forever.
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) finished.reject(payload.error);
    });
    await consumer.connect();
    // From the beginning: should retention drop the position, reading resumes at the oldest
    // record (an offset above the lost ones) rather than waiting at the end.
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, pause, isStale }) => {
        if (batch.partition !== args.partition) {
          pause(); // other partitions are not read at all
          return;
        }
        // A batch fetched before the seek to the range's start applied is not in the range.
        if (done || isStale()) return;
        const fresh = batch.messages.filter((m) => {
          const o = BigInt(m.offset);
          return o >= next && o <= end;
        });
        try {
          for (let i = 0; i < fresh.length; i += maxBatch) {
            if (signal.aborted) return;
            const chunk = fresh.slice(i, i + maxBatch);
            const records = selectRecords(chunk, topics, args.reason, summary);
            const outputs = await processRecords(records, {
              refdata: lookup,
              topics,
              maxFutureSkewMs: config.DATA_PROC_MAX_FUTURE_SKEW_MS,
            });
            await publishOutputs(outputs, sinks);
            summary.reprocessed_ok += outputs.ticks.length + outputs.curvePoints.length;
            summary.failed_again += outputs.dlq.length;
            for (const d of outputs.dlq) {
              summary.failed_again_by_reason[d.reason] =
                (summary.failed_again_by_reason[d.reason] ?? 0) + 1;
            }
            // Resolved: the next fetch starts after this chunk, never at its first record again.
            const last = chunk[chunk.length - 1]!.offset;
            resolveOffset(last);
            next = BigInt(last) + 1n;
            progress(summary, position());
            await heartbeat();
          }
        } catch (err) {
          done = true;
          finished.reject(err);
          return;
        }
        if (signal.aborted) return;
        passed(batch.lastOffset());
        finishIfPassedEnd();
      },
    });
    consumer.seek({ topic, partition: args.partition, offset: String(args.startOffset) });
    try {
      await finished.promise;
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    progress(summary, position());
    return summary;
  } finally {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await refdata?.close();
    await clickhouse.close();
    await sql.end();
  }
}

const PROGRESS_EVERY_MS = 1000;

async function main(argv: string[]): Promise<number> {
  let args: ReprocessArgs | "help";
  try {
    args = parseReprocessArgs(argv, `cli:${Deno.env.get("USER") ?? "unknown"}`);
  } catch (err) {
    console.error(`dlq:reprocess: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args === "help") {
    console.log(HELP);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfigFromEnv();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  const target = {
    topic: args.topic ?? topicNames(config.DATA_PROC_TOPIC_PREFIX).dlq,
    partition: args.partition,
    start_offset: String(args.startOffset),
    end_offset: String(args.endOffset),
    reason: args.reason ?? null,
  };
  let outcome: "ok" | "failed" = "ok";
  let summary: ReprocessSummary | undefined;
  let failure: unknown;
  try {
    let shownAt = 0;
    let shownEnd = false;
    summary = await reprocessDlqRange(config, args, interrupt.signal, (s, at) => {
      const now = Date.now();
      const atEnd = at.done >= at.total;
      if (atEnd ? shownEnd : now - shownAt < PROGRESS_EVERY_MS) return;
      shownAt = now;
      shownEnd = atEnd;
      console.error(
        `dlq:reprocess: ${at.done} of ${at.total} offsets: read ${s.read}, ok ${s.reprocessed_ok}, ` +
          `failed again ${s.failed_again}, skipped ${
            s.skipped_by_filter + s.skipped_not_reprocessable
          }`,
      );
    });
  } catch (err) {
    if (err instanceof RangeError) {
      console.error(`dlq:reprocess: ${err.message}`);
      return 2;
    }
    outcome = "failed";
    failure = err;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  try {
    await recordAudit(sql, {
      actor: args.actor,
      action: "dlq.reprocess",
      target,
      outcome,
      details: failure === undefined
        ? { ...summary }
        : { error: failure instanceof Error ? failure.message : String(failure) },
    });
  } finally {
    await sql.end();
  }
  if (failure !== undefined) {
    console.error(`dlq:reprocess: failed (nothing lost; run again): ${failure}`);
    return EXIT_FAILED;
  }
  console.error(
    `dlq:reprocess: done: read ${summary!.read}, reprocessed ok ${summary!.reprocessed_ok}, ` +
      `failed again ${summary!.failed_again} ${JSON.stringify(summary!.failed_again_by_reason)}, ` +
      `skipped by filter ${summary!.skipped_by_filter}, not reprocessable ${
        summary!.skipped_not_reprocessable
      }`,
  );
  console.log(JSON.stringify(summary));
  return 0;
}

// runCli: a failure outside the run (e.g. writing the audit row) is exit code 3 too.
if (import.meta.main) Deno.exit(await runCli("dlq:reprocess", main, Deno.args));
