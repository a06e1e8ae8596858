/**
 * Helpers for normalizer integration tests against the real stack: clients for a fresh
 * environment, raw Bronze produce, reading a topic back with kcat (an independent
 * consumer), reference-data rows, and Silver counts.
 */
import { Buffer } from "node:buffer";
import type { Kafka, Producer } from "kafkajs";
import { isControlRecord } from "../messages/watermark.ts";
import { createLogger } from "../observability/logger.ts";
import { type ClickHouseClient, createClickHouse, queryRows } from "../stores/clickhouse.ts";
import { createKafka, ensureTopics, topicNames, type Topics } from "../stores/kafka.ts";
import { createPostgres, type Sql } from "../stores/postgres.ts";
import { createNormalizedProducer } from "../supervisors/normalization_pipeline.ts";
import { type NormalizerHandle, startNormalizer } from "../supervisors/normalizer_supervisor.ts";
import { bronzeSamples, type SampleOptions } from "../tools/bronze_samples.ts";
import type { TestEnv } from "./support.ts";

export interface Harness {
  kafka: Kafka;
  producer: Producer;
  sql: Sql;
  ch: ClickHouseClient;
  topics: Topics;
  silverDb: string;
  /** Starts an in-process normalizer; stopped by `close()`. */
  startNormalizer(): Promise<NormalizerHandle>;
  close(): Promise<void>;
}

export async function openHarness(testEnv: TestEnv, partitions = 3): Promise<Harness> {
  const { config } = testEnv;
  const kafka = createKafka(config.DATA_PROC_KAFKA_BOOTSTRAP, `test-${testEnv.id}`);
  const topics = topicNames(config.DATA_PROC_TOPIC_PREFIX);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, topics, partitions);
  } finally {
    await admin.disconnect();
  }
  const producer = createNormalizedProducer(kafka);
  await producer.connect();
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 2 });
  const ch = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  const shutdown = new AbortController();
  const normalizers: NormalizerHandle[] = [];
  return {
    kafka,
    producer,
    sql,
    ch,
    topics,
    silverDb: config.DATA_PROC_CLICKHOUSE_SILVER_DB,
    startNormalizer: async () => {
      const handle = await startNormalizer({
        config,
        kafka,
        clickhouse: ch,
        sql,
        logger: createLogger("test"),
        signal: shutdown.signal,
      });
      normalizers.push(handle);
      return handle;
    },
    close: async () => {
      shutdown.abort();
      for (const n of normalizers) await n.stop();
      await producer.disconnect();
      await sql.end();
      await ch.close();
    },
  };
}

export interface RawMessage {
  key?: Uint8Array | string | null;
  value: Uint8Array | string | null;
}

const toBuffer = (v: Uint8Array | string | null | undefined) =>
  v === null || v === undefined ? null : typeof v === "string" ? Buffer.from(v) : Buffer.from(v);

/** Produces messages byte-for-byte (acks from all replicas). */
export async function produceRaw(
  producer: Producer,
  topic: string,
  messages: readonly RawMessage[],
): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: messages.map((m) => ({ key: toBuffer(m.key), value: toBuffer(m.value) })),
  });
}

export const json = (value: unknown) => JSON.stringify(value);

export interface TopicRecord {
  partition: number;
  offset: number;
  /** The record's Kafka timestamp (epoch ms; CreateTime, set by the producer). */
  ts: number;
  key: string | null;
  payload: string | null;
  /** Kafka headers by name (kcat -J gives `[name, value, ...]`). */
  headers: Record<string, string>;
}

/**
 * Reads a whole topic (to its current end) with kcat. Control records (`dp-control`
 * header, e.g. watermarks) are skipped as readers of the contract do, unless `control`.
 */
export async function readTopic(
  bootstrap: string,
  topic: string,
  options: { control?: boolean } = {},
): Promise<TopicRecord[]> {
  const out = await new Deno.Command("kcat", {
    // A short fetch wait lets kcat see the end (-e) of a partition that is written
    // continuously (watermarks every DATA_PROC_WATERMARK_INTERVAL_MS); with librdkafka's
    // default of 500 ms it may never reach it.
    args: [
      "-C",
      "-b",
      bootstrap,
      "-t",
      topic,
      "-o",
      "beginning",
      "-e",
      "-q",
      "-J",
      "-X",
      "fetch.wait.max.ms=10",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`kcat failed: ${new TextDecoder().decode(out.stderr)}`);
  const records = new TextDecoder().decode(out.stdout).split("\n")
    .filter((l) => l.trim() !== "").map(parseKcatRecord);
  return options.control ? records : records.filter((r) => !isControlRecord(r.headers));
}

function parseKcatRecord(line: string): TopicRecord {
  const raw = JSON.parse(line) as Omit<TopicRecord, "headers"> & { headers?: string[] };
  const headers: Record<string, string> = {};
  const list = raw.headers ?? [];
  for (let i = 0; i + 1 < list.length; i += 2) headers[list[i]!] = list[i + 1]!;
  return { ...raw, headers };
}

/** Reads a topic until `count` records are there (polling without sleeps in the test). */
export async function readTopicUntil(
  bootstrap: string,
  topic: string,
  count: number,
  pollUntil: <T>(what: string, probe: () => Promise<T | undefined>) => Promise<T>,
): Promise<TopicRecord[]> {
  return await pollUntil(`${count} records in ${topic}`, async () => {
    const records = await readTopic(bootstrap, topic);
    return records.length >= count ? records : undefined;
  });
}

export interface InstrumentRow {
  source: string;
  symbol: string;
  instrument_id: string;
  price_multiplier?: string;
  commodity?: string;
  region?: string;
  currency?: string;
  unit?: string;
}

export async function upsertInstrument(sql: Sql, row: InstrumentRow): Promise<void> {
  await sql`INSERT INTO instruments (instrument_id, commodity, region, currency, unit)
    VALUES (${row.instrument_id}, ${row.commodity ?? null}, ${row.region ?? null},
            ${row.currency ?? null}, ${row.unit ?? null})
    ON CONFLICT (instrument_id) DO UPDATE SET commodity = excluded.commodity,
      region = excluded.region, currency = excluded.currency, unit = excluded.unit,
      updated_at = now()`;
  await sql`INSERT INTO instrument_map (source, symbol, instrument_id, price_multiplier)
    VALUES (${row.source}, ${row.symbol}, ${row.instrument_id}, ${row.price_multiplier ?? "1"})
    ON CONFLICT (source, symbol) DO UPDATE SET instrument_id = excluded.instrument_id,
      price_multiplier = excluded.price_multiplier, updated_at = now()`;
}

export async function upsertCurve(
  sql: Sql,
  row: { source: string; curve: string; curve_id: string; commodity?: string; unit?: string },
): Promise<void> {
  await sql`INSERT INTO curves (curve_id, commodity, region, currency, unit)
    VALUES (${row.curve_id}, ${row.commodity ?? null}, null, null, ${row.unit ?? null})
    ON CONFLICT (curve_id) DO NOTHING`;
  await sql`INSERT INTO curve_map (source, curve, curve_id)
    VALUES (${row.source}, ${row.curve}, ${row.curve_id})
    ON CONFLICT (source, curve) DO UPDATE SET curve_id = excluded.curve_id, updated_at = now()`;
}

/** Rows of a silver table after FINAL (one per key) and the distinct event_ids. */
export async function silverCounts(
  ch: ClickHouseClient,
  db: string,
  table: "ticks" | "curve_points",
): Promise<{ rows: number; distinct: number }> {
  const [row] = await queryRows<{ rows: string; distinct: string }>(
    ch,
    `SELECT count() AS rows, uniqExact(event_id) AS distinct FROM ${db}.${table} FINAL`,
  );
  return { rows: Number(row?.rows ?? 0), distinct: Number(row?.distinct ?? 0) };
}

/** Sum of the normalizer group's committed offsets on a topic (= records fully handled). */
export async function committedCount(kafka: Kafka, groupId: string, topic: string) {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [result] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return (result?.partitions ?? []).reduce((sum, p) => sum + Math.max(0, Number(p.offset)), 0);
  } finally {
    await admin.disconnect();
  }
}

/** What the normalizer must produce for a sample set: every record accounted for. */
export function expectedFor(options: SampleOptions) {
  const uniqueTicks = new Set<string>();
  const uniqueCurves = new Set<string>();
  const dlq: Record<string, number> = {};
  let ok = 0;
  let ticksIn = 0;
  let curvesIn = 0;
  for (const s of bronzeSamples(options)) {
    if (s.kind === "tick") ticksIn += 1;
    else curvesIn += 1;
    if (s.expected !== "ok") {
      dlq[s.expected] = (dlq[s.expected] ?? 0) + 1;
      continue;
    }
    ok += 1;
    const id = (JSON.parse(new TextDecoder().decode(s.value)) as { event_id: string }).event_id;
    (s.kind === "tick" ? uniqueTicks : uniqueCurves).add(id);
  }
  return { ok, ticksIn, curvesIn, uniqueTicks, uniqueCurves, dlq };
}
