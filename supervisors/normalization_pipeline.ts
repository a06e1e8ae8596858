/**
 * The Bronze -> Silver pipeline shared by the live normalizer and `dlq:reprocess`:
 * `processRecords` turns raw records into outputs (Silver events and DLQ envelopes, every
 * input accounted for exactly once), `publishOutputs` writes them to Kafka and ClickHouse
 * and resolves only when every write is acknowledged. Committing offsets is the caller's.
 */
import { type Kafka, type Message, Partitioners, type Producer } from "kafkajs";
import { normalizeCurvePoint } from "../actors/normalize_curve_point.ts";
import type { Rejection } from "../actors/normalize_result.ts";
import { normalizeTick } from "../actors/normalize_tick.ts";
import type { ReferenceLookup } from "../actors/reference_lookup.ts";
import { buildDlqRecord, type DlqReason, type DlqRecord } from "../messages/dlq_record.ts";
import type { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { type ClickHouseClient, insertRows } from "../stores/clickhouse.ts";
import type { Topics } from "../stores/kafka.ts";
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
  return kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
}

export interface PublishSinks {
  producer: Producer;
  clickhouse: ClickHouseClient;
  topics: Topics;
  silverDb: string;
  /** Rows per ClickHouse insert. */
  maxInsertRows: number;
}

/**
 * Publishes outputs: one `sendBatch` (acks from all in-sync replicas) for Silver topics and
 * DLQ, and ClickHouse inserts of at most `maxInsertRows` rows. Throws if any write fails;
 * a retry repeats every write, which is safe: Silver rows collapse by event_id and readers
 * drop repeated event_ids.
 */
export async function publishOutputs(
  outputs: NormalizationOutputs,
  sinks: PublishSinks,
): Promise<void> {
  if (!(sinks.maxInsertRows >= 1)) {
    throw new RangeError(`Cannot publish: maxInsertRows must be >= 1, got ${sinks.maxInsertRows}`);
  }
  const db = sqlIdentifier(sinks.silverDb);
  const topicMessages = [
    {
      topic: sinks.topics.normalizedTicks,
      messages: outputs.ticks.map((t): Message => ({
        key: t.instrument_id,
        value: JSON.stringify(t),
      })),
    },
    {
      topic: sinks.topics.normalizedCurves,
      messages: outputs.curvePoints.map((p): Message => ({
        key: p.curve_id,
        value: JSON.stringify(p),
      })),
    },
    {
      topic: sinks.topics.dlq,
      // Keyed by source partition so a Bronze partition's failures stay in offset order.
      messages: outputs.dlq.map((d): Message => ({
        key: `${d.source_topic}/${d.source_partition}`,
        value: JSON.stringify(d),
      })),
    },
  ].filter((t) => t.messages.length > 0);

  const inserts = async () => {
    for (const rows of chunks(outputs.ticks.map(tickRow), sinks.maxInsertRows)) {
      await insertRows(sinks.clickhouse, `${db}.ticks`, rows);
    }
    for (const rows of chunks(outputs.curvePoints.map(curvePointRow), sinks.maxInsertRows)) {
      await insertRows(sinks.clickhouse, `${db}.curve_points`, rows);
    }
  };
  await Promise.all([
    topicMessages.length > 0 ? sinks.producer.sendBatch({ acks: -1, topicMessages }) : undefined,
    inserts(),
  ]);
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

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}
