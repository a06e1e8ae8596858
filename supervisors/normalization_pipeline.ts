/**
 * The Bronze -> Silver pipeline shared by the live normalizer and `dlq:reprocess`:
 * `processRecords` turns raw records into outputs (Silver events and DLQ envelopes, every
 * input accounted for exactly once), `publishOutputs` writes them to Kafka and ClickHouse
 * in requests each store accepts and resolves only when every write is acknowledged;
 * `storeRefusal` tells a store refusing the data from an outage, and `publishSplitting`
 * writes a refused batch in pieces, sending what no store takes to the DLQ. Committing
 * offsets is the caller's.
 */
import { ClickHouseError } from "@clickhouse/client";
import type { Kafka, Producer } from "kafkajs";
import { normalizeCurvePoint } from "../actors/normalize_curve_point.ts";
import type { Rejection } from "../actors/normalize_result.ts";
import { normalizeTick } from "../actors/normalize_tick.ts";
import type { ReferenceLookup } from "../messages/reference_lookup.ts";
import { buildDlqRecord, type DlqReason, type DlqRecord } from "../messages/dlq_record.ts";
import type { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { countSinkFailure } from "../observability/metrics.ts";
import { type ClickHouseClient, insertRows, partitionBlocks } from "../stores/clickhouse.ts";
import { createProducer, type OutgoingMessage, sendChunked, type Topics } from "../stores/kafka.ts";
import { sqlIdentifier } from "../stores/sql.ts";

export const NORMALIZE_STAGE = "normalize";

/** One Bronze record as read from Kafka (or rebuilt from a DLQ envelope). */
export interface BronzeRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Uint8Array | null;
  value: Uint8Array | null;
  /** The Bronze append time (Kafka timestamp); becomes `ingest_time_ms`, so output is deterministic. */
  timestampMs: number;
}

/** A reference lookup that can be asked to refresh early after a miss. */
export interface RefreshableLookup extends ReferenceLookup {
  refreshAfterMiss(): Promise<boolean>;
}

export interface NormalizationOutputs {
  ticks: NormalizedTick[];
  curvePoints: NormalizedCurvePoint[];
  dlq: DlqRecord[];
}

export interface NormalizeRecordsOptions {
  topics: Topics;
  /** DATA_PROC_MAX_FUTURE_SKEW_MS: event time allowed ahead of the record timestamp. */
  maxFutureSkewMs: number;
  /** Wall clock for `failed_at_ms` of DLQ envelopes. */
  nowMs: number;
}

/** Pure: each record becomes exactly one Silver event or one DLQ envelope. */
export function normalizeRecords(
  records: readonly BronzeRecord[],
  refdata: ReferenceLookup,
  options: NormalizeRecordsOptions,
): NormalizationOutputs {
  const out: NormalizationOutputs = { ticks: [], curvePoints: [], dlq: [] };
  for (const record of records) {
    try {
      normalizeInto(out, record, refdata, options);
    } catch (err) {
      // Normalization never throws by design; if a bug makes it, the record is poison for
      // this code: DLQ it (reprocessable once fixed) rather than stall the partition.
      const message = `unexpected normalization error: ${(err as Error)?.message ?? err}`;
      out.dlq.push(dlqEnvelope(record, { reason: "poison_event", message }, options.nowMs));
    }
  }
  return out;
}

function normalizeInto(
  out: NormalizationOutputs,
  record: BronzeRecord,
  refdata: ReferenceLookup,
  options: NormalizeRecordsOptions,
): void {
  const opts = { ingestTimeMs: record.timestampMs, maxFutureSkewMs: options.maxFutureSkewMs };
  if (record.topic === options.topics.bronzeTicks) {
    const result = normalizeTick(record.value, refdata, opts);
    if (result.ok) out.ticks.push(result.event);
    else out.dlq.push(dlqEnvelope(record, result.rejection, options.nowMs));
  } else if (record.topic === options.topics.bronzeCurves) {
    const result = normalizeCurvePoint(record.value, refdata, opts);
    if (result.ok) out.curvePoints.push(result.event);
    else out.dlq.push(dlqEnvelope(record, result.rejection, options.nowMs));
  } else {
    const message = `topic: ${record.topic} is not a Bronze topic`;
    out.dlq.push(dlqEnvelope(record, { reason: "invalid_payload", message }, options.nowMs));
  }
}

/**
 * Normalizes a batch; when a record misses its reference data, asks the lookup for an early
 * (rate-limited) refresh and, if the view changed, normalizes the batch again.
 */
export async function processRecords(
  records: readonly BronzeRecord[],
  options: {
    refdata: RefreshableLookup;
    topics: Topics;
    maxFutureSkewMs: number;
    now?: () => number;
  },
): Promise<NormalizationOutputs> {
  const { refdata, topics, maxFutureSkewMs } = options;
  const now = options.now ?? Date.now;
  const first = normalizeRecords(records, refdata, { topics, maxFutureSkewMs, nowMs: now() });
  const missed = first.dlq.some((d) =>
    d.reason === "unknown_instrument" || d.reason === "unknown_curve"
  );
  if (!missed || !(await refdata.refreshAfterMiss())) return first;
  return normalizeRecords(records, refdata, { topics, maxFutureSkewMs, nowMs: now() });
}

/** The DLQ envelope of CONTRACT.md; key and value bytes are kept exactly (base64). */
export function dlqEnvelope(
  record: BronzeRecord,
  rejection: Rejection | { reason: DlqReason; message: string },
  nowMs: number,
): DlqRecord {
  return buildDlqRecord(record, {
    stage: NORMALIZE_STAGE,
    reason: rejection.reason,
    message: rejection.message,
    nowMs,
  });
}

/** A producer for Silver and DLQ topics: Java-compatible murmur2 partitioning by key. */
export function createNormalizedProducer(kafka: Kafka): Producer {
  return createProducer(kafka, { allowAutoTopicCreation: false });
}

export interface PublishSinks {
  /** Only `sendBatch` is used. */
  producer: Pick<Producer, "sendBatch">;
  clickhouse: ClickHouseClient;
  topics: Topics;
  silverDb: string;
  /** Rows per ClickHouse insert. */
  maxInsertRows: number;
}

/**
 * Distinct partitions of a silver table per ClickHouse insert block. Current servers refuse a
 * block that touches more than `max_partitions_per_insert_block` (default 100) partitions.
 */
export const MAX_PARTITIONS_PER_INSERT = 50;

/**
 * Publishes outputs: Silver topics and DLQ through `sendChunked` (each partition keeps its
 * order), and ClickHouse inserts of at most `maxInsertRows` rows that each touch at most
 * MAX_PARTITIONS_PER_INSERT monthly partitions. Throws if any write fails (an outage rather
 * than a refusal when both happened); a retry repeats every write, which is safe: Silver rows
 * collapse by event_id and readers drop repeated event_ids.
 */
export async function publishOutputs(
  outputs: NormalizationOutputs,
  sinks: PublishSinks,
): Promise<void> {
  if (!Number.isInteger(sinks.maxInsertRows) || sinks.maxInsertRows < 1) {
    throw new RangeError(`Cannot publish: maxInsertRows must be >= 1, got ${sinks.maxInsertRows}`);
  }
  const db = sqlIdentifier(sinks.silverDb);
  const messages: OutgoingMessage[] = [
    ...outputs.ticks.map((t) => ({
      topic: sinks.topics.normalizedTicks,
      key: t.instrument_id,
      value: JSON.stringify(t),
    })),
    ...outputs.curvePoints.map((p) => ({
      topic: sinks.topics.normalizedCurves,
      key: p.curve_id,
      value: JSON.stringify(p),
    })),
    // Keyed by source partition so a Bronze partition's failures stay in offset order.
    ...outputs.dlq.map((d) => ({
      topic: sinks.topics.dlq,
      key: `${d.source_topic}/${d.source_partition}`,
      value: JSON.stringify(d),
    })),
  ];
  const blocks = { maxPartitions: MAX_PARTITIONS_PER_INSERT, maxRows: sinks.maxInsertRows };
  const inserts = async () => {
    // Partition keys as in stores/migrations/clickhouse: toYYYYMM(event_time), toYYYYMM(as_of).
    const ticks = partitionBlocks(outputs.ticks.map(tickRow), (r) => month(r.event_time), blocks);
    for (const rows of ticks) await insertRows(sinks.clickhouse, `${db}.ticks`, rows);
    const points = partitionBlocks(
      outputs.curvePoints.map(curvePointRow),
      (r) => month(r.as_of),
      blocks,
    );
    for (const rows of points) await insertRows(sinks.clickhouse, `${db}.curve_points`, rows);
  };
  const results = await Promise.allSettled([
    countSinkFailure("kafka", sendChunked(sinks.producer, messages)),
    countSinkFailure("clickhouse", inserts()),
  ]);
  const errors = results.flatMap((r) => r.status === "rejected" ? [r.reason as unknown] : []);
  if (errors.length > 0) {
    throw errors.find((e) => storeRefusal(e) === undefined) ?? errors[0];
  }
}

/** `YYYY-MM` of a `YYYY-MM-DD...` text: the month ClickHouse's toYYYYMM gives for it. */
function month(text: unknown): string {
  return String(text).slice(0, 7);
}

/**
 * A store refusing the data it was given, as opposed to being unreachable, slow or
 * misconfigured. `code` says how, e.g. `kafka:MESSAGE_TOO_LARGE` or `clickhouse:27`.
 * `blockTooLarge`: the request as a whole is refused for its size or spread, so a smaller
 * one may pass but no single record is to blame (ClickHouse's partitions-per-block limit).
 */
export interface StoreRefusal {
  code: string;
  blockTooLarge: boolean;
}

/**
 * Kafka errors about the records themselves (kafkajs protocol error types): a record or
 * batch over message.max.bytes or the segment size, or a record the broker's validation
 * refuses. Everything else (connection, timeout, leadership, authorization) is an outage.
 */
const KAFKA_REFUSALS = new Set(["MESSAGE_TOO_LARGE", "RECORD_LIST_TOO_LARGE", "INVALID_RECORD"]);

/**
 * ClickHouse exception codes about the values of the rows sent: text that does not parse as
 * its column's type, or a value out of its range. Codes about the table or the server
 * (unknown table or column, unknown field, memory, too many queries, read-only, timeouts)
 * are outages or configuration: they are retried, never split or sent to the DLQ.
 */
const CLICKHOUSE_ROW_REFUSALS = new Set([
  6, // CANNOT_PARSE_TEXT
  26, // CANNOT_PARSE_QUOTED_STRING
  27, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  38, // CANNOT_PARSE_DATE
  41, // CANNOT_PARSE_DATETIME
  69, // ARGUMENT_OUT_OF_BOUND
  70, // CANNOT_CONVERT_TYPE
  72, // CANNOT_PARSE_NUMBER
  131, // TOO_LARGE_STRING_SIZE
  321, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
]);
/** TOO_MANY_PARTS: also "too many partitions for single INSERT block" (a block's spread). */
const CLICKHOUSE_TOO_MANY_PARTS = 252;

/**
 * ClickHouse server errors as the HTTP interface words them: `Code: 27, e.displayText() =
 * DB::Exception: ...` (18.x, which @clickhouse/client leaves a plain Error) or
 * `Code: 27. DB::Exception: ... (TYPE)` (current servers, parsed into a ClickHouseError).
 */
const CLICKHOUSE_EXCEPTION = /^Code: (\d+)[.,] (?:e\.displayText\(\) = )?DB::Exception/;

/** The refusal `err` is, or undefined when it is anything else (an outage: retry it). */
export function storeRefusal(err: unknown): StoreRefusal | undefined {
  // kafkajs may wrap the broker's error in retrier errors (`cause`); look a few levels down.
  let e: unknown = err;
  for (let depth = 0; depth < 5 && e instanceof Error; depth++) {
    const type = (e as { type?: unknown }).type;
    if (e.name === "KafkaJSProtocolError" && typeof type === "string") {
      return KAFKA_REFUSALS.has(type) ? { code: `kafka:${type}`, blockTooLarge: false } : undefined;
    }
    e = e.cause;
  }
  if (!(err instanceof Error)) return undefined;
  const code = err instanceof ClickHouseError
    ? Number(err.code)
    : Number(CLICKHOUSE_EXCEPTION.exec(err.message)?.[1] ?? NaN);
  if (code === CLICKHOUSE_TOO_MANY_PARTS) {
    return { code: `clickhouse:${code}`, blockTooLarge: true };
  }
  if (CLICKHOUSE_ROW_REFUSALS.has(code)) {
    return { code: `clickhouse:${code}`, blockTooLarge: false };
  }
  return undefined;
}

export interface SplitOptions {
  refdata: ReferenceLookup;
  topics: Topics;
  maxFutureSkewMs: number;
  sinks: PublishSinks;
  /** The error the whole batch was refused with (it is split right away), if any. */
  refused?: unknown;
  now?: () => number;
}

/**
 * Writes a batch that a store refused as a whole: normalizes and publishes it in halves, and
 * halves of those, until each piece is accepted (no refresh of reference data on a miss: the
 * caller's `processRecords` of the whole batch did that). A single record refused twice the
 * same way goes to the DLQ as `write_failed` (with its key and value bytes, or without them
 * when its envelope is itself too large for Kafka). A record refused only for the spread of its block
 * is not to blame, and an error that is not a refusal is an outage: both are thrown, and the
 * caller retries the batch. Resolves with what was written, in input order.
 *
 * Not transactional: a record sent to the DLQ may already be in one store (its Silver
 * event in Kafka while ClickHouse refused its row, or the other way round).
 */
export async function publishSplitting(
  records: readonly BronzeRecord[],
  options: SplitOptions,
): Promise<NormalizationOutputs> {
  const now = options.now ?? Date.now;
  const normalize = (rs: readonly BronzeRecord[]) =>
    normalizeRecords(rs, options.refdata, {
      topics: options.topics,
      maxFutureSkewMs: options.maxFutureSkewMs,
      nowMs: now(),
    });
  /** `refused`: the error this piece was refused with already, if it was. */
  const write = async (
    rs: readonly BronzeRecord[],
    refused: unknown,
  ): Promise<NormalizationOutputs> => {
    if (storeRefusal(refused) === undefined) {
      const out = normalize(rs);
      try {
        await publishOutputs(out, options.sinks);
        return out;
      } catch (err) {
        if (storeRefusal(err) === undefined) throw err;
        refused = err;
      }
    }
    if (rs.length === 1) return await writeSingle(rs[0]!, refused);
    const half = Math.ceil(rs.length / 2);
    const left = await write(rs.slice(0, half), undefined);
    return mergeOutputs(left, await write(rs.slice(half), undefined));
  };
  const writeSingle = async (
    record: BronzeRecord,
    firstErr: unknown,
  ): Promise<NormalizationOutputs> => {
    const out = normalize([record]);
    try {
      await publishOutputs(out, options.sinks); // refused once: once more before the DLQ
      return out;
    } catch (err) {
      const refusal = storeRefusal(err);
      if (refusal === undefined || refusal.code !== storeRefusal(firstErr)?.code) throw err;
      if (refusal.blockTooLarge) throw err; // one record's block: not this record's fault
      return { ticks: [], curvePoints: [], dlq: [await writeRefused(record, out, err)] };
    }
  };
  const writeRefused = async (
    record: BronzeRecord,
    out: NormalizationOutputs,
    err: unknown,
  ): Promise<DlqRecord> => {
    const refused = `${storeRefusal(err)!.code}: ${(err as Error).message.slice(0, 500)}`;
    const own = out.dlq[0]; // the record was bound for the DLQ already
    const message = own
      ? `${own.reason}: ${own.message}; its DLQ envelope was refused (${refused})`
      : `its normalized event was refused (${refused})`;
    const full = dlqEnvelope(record, { reason: "write_failed", message }, now());
    const bare: DlqRecord = {
      ...full,
      key_b64: null,
      value_b64: null,
      message: `${message}; key and value left out (too large for an envelope), read them at ` +
        `${record.topic}[${record.partition}]@${record.offset}`,
    };
    // An envelope carrying the bytes the DLQ refused once would be refused again.
    const candidates = own ? [bare] : [full, bare];
    let last: unknown = err;
    for (const envelope of candidates) {
      try {
        await publishOutputs({ ticks: [], curvePoints: [], dlq: [envelope] }, options.sinks);
        return envelope;
      } catch (e) {
        if (storeRefusal(e) === undefined) throw e;
        last = e;
      }
    }
    throw last;
  };
  return await write(records, options.refused);
}

function mergeOutputs(a: NormalizationOutputs, b: NormalizationOutputs): NormalizationOutputs {
  return {
    ticks: [...a.ticks, ...b.ticks],
    curvePoints: [...a.curvePoints, ...b.curvePoints],
    dlq: [...a.dlq, ...b.dlq],
  };
}

/** `YYYY-MM-DD hh:mm:ss` in UTC, the text form every ClickHouse version reads for DateTime. */
function dateTimeText(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().slice(0, 19).replace("T", " ");
}

/** A `silver.ticks` row: every column, strings instead of nulls. */
export function tickRow(t: NormalizedTick): Record<string, unknown> {
  return {
    event_id: t.event_id,
    instrument_id: t.instrument_id,
    event_time_ms: t.event_time_ms,
    event_time: dateTimeText(t.event_time_ms),
    price: t.price,
    size: t.size,
    source: t.source,
    symbol: t.symbol,
    commodity: t.commodity ?? "",
    region: t.region ?? "",
    currency: t.currency ?? "",
    unit: t.unit ?? "",
    ingest_time_ms: t.ingest_time_ms,
  };
}

/** A `silver.curve_points` row: every column, strings instead of nulls. */
export function curvePointRow(p: NormalizedCurvePoint): Record<string, unknown> {
  return {
    event_id: p.event_id,
    curve_id: p.curve_id,
    as_of: p.as_of,
    tenor: p.tenor,
    price: p.price,
    event_time_ms: p.event_time_ms,
    event_time: dateTimeText(p.event_time_ms),
    source: p.source,
    curve: p.curve,
    commodity: p.commodity ?? "",
    region: p.region ?? "",
    currency: p.currency ?? "",
    unit: p.unit ?? "",
    ingest_time_ms: p.ingest_time_ms,
  };
}
