/**
 * Shared pieces of the actor-stage integration tests: produce normalized events as the
 * normalizer does (keyed, murmur2 partitioner), read back Redis projections and
 * `gold.bars FINAL`, and compare them with the independent oracle in tests/expected.ts.
 */
import { Partitioners } from "../stores/kafkajs.ts";
import type { Bar } from "../messages/bar.ts";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { CONTROL_HEADER, WATERMARK_CONTROL, type WatermarkRecord } from "../messages/watermark.ts";
import { createClickHouse, queryRows } from "../stores/clickhouse.ts";
import { createKafka, ensureTopics, topicNames } from "../stores/kafka.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { barDifferences, barKey, compareFloat, type ExpectedInstruments } from "./expected.ts";
import { pollUntil, type TestEnv } from "./support.ts";

/** The one source the harness stands in for when it writes watermark records. */
export const TEST_SOURCE_TOPIC = "test.ingestion.market.ticks.v1";

export async function createTopics(env: TestEnv): Promise<void> {
  const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`);
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(
      admin,
      topicNames(env.config.DATA_PROC_TOPIC_PREFIX),
      env.config.DATA_PROC_NORMALIZED_PARTITIONS,
    );
  } finally {
    await admin.disconnect();
  }
}

/** Ticks between two watermark records written by `produceTicks`. */
const WATERMARK_EVERY = 1000;

/**
 * Where `produceTicks` wrote watermark records, for `expectedInstruments`: `bounds` are the
 * arrival indexes where each call's ticks started, then the total (e.g. [0, 30_000, 50_000]
 * for two calls of 30k and 20k ticks).
 */
export function watermarksAt(...bounds: number[]): number[] {
  const at: number[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    for (let k = bounds[i]! + WATERMARK_EVERY; k < bounds[i + 1]!; k += WATERMARK_EVERY) at.push(k);
    at.push(bounds[i + 1]!);
  }
  return at;
}

/**
 * Produces ticks to the normalized topic in order, keyed by instrument_id; after every
 * WATERMARK_EVERY of them, as the normalizer does for one source partition, a watermark
 * record (their greatest event time) into every partition. `appendedAtMs` stamps every
 * record with that time instead of now (a backlog written while the node was down).
 */
export async function produceTicks(
  env: TestEnv,
  ticks: readonly NormalizedTick[],
  options: { appendedAtMs?: number } = {},
): Promise<void> {
  const timestamp = options.appendedAtMs === undefined ? {} : {
    timestamp: String(options.appendedAtMs),
  };
  const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    const topic = topicNames(env.config.DATA_PROC_TOPIC_PREFIX).normalizedTicks;
    for (let i = 0; i < ticks.length; i += WATERMARK_EVERY) {
      const chunk = ticks.slice(i, i + WATERMARK_EVERY);
      await producer.send({
        topic,
        acks: -1,
        messages: chunk.map((t) => ({
          key: t.instrument_id,
          value: JSON.stringify(t),
          ...timestamp,
        })),
      });
      const mark: WatermarkRecord = {
        type: "watermark",
        source_topic: TEST_SOURCE_TOPIC,
        source_partition: 0,
        watermark_ms: chunk.reduce((max, t) => Math.max(max, t.event_time_ms), -Infinity),
        idle: false,
        wall_ms: Date.now(),
        source_partitions: 1,
      };
      await producer.send({
        topic,
        acks: -1,
        messages: Array.from({ length: env.config.DATA_PROC_NORMALIZED_PARTITIONS }, (_, p) => ({
          partition: p,
          key: null,
          value: JSON.stringify(mark),
          headers: { [CONTROL_HEADER]: WATERMARK_CONTROL },
          ...timestamp,
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

/** True when the actor group's committed offsets reach the end of every ticks partition. */
export async function committedToEnd(env: TestEnv): Promise<boolean> {
  const admin = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`).admin();
  await admin.connect();
  try {
    const topic = topicNames(env.config.DATA_PROC_TOPIC_PREFIX).normalizedTicks;
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({
      groupId: `${env.config.DATA_PROC_GROUP_ID}.actors`,
      topics: [topic],
    });
    return ends.every((e) =>
      Number(committed?.partitions.find((c) => c.partition === e.partition)?.offset ?? -1) ===
        Number(e.high)
    );
  } finally {
    await admin.disconnect();
  }
}

/** A `gold.bars` row as ClickHouse's JSON gives it: 64-bit integers as text, final as 0/1. */
type GoldBarRow = Omit<Bar, "start_ms" | "end_ms" | "count" | "final" | "version"> & {
  start_ms: string;
  end_ms: string;
  count: string;
  final: number;
  version: string;
};

/**
 * Differences between the stores and the expected result: Redis latest and bar projections
 * and every `gold.bars FINAL` row. Empty when everything is exact.
 */
export async function instrumentDifferences(
  env: TestEnv,
  expected: ExpectedInstruments,
): Promise<string[]> {
  const problems: string[] = [];
  const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  const prefix = env.config.DATA_PROC_REDIS_PREFIX;
  try {
    const ids = [...expected.latest.keys()];
    const latest = ids.length
      ? await redis.mget(ids.map((id) => `${prefix}projection:latest:${id}`))
      : [];
    ids.forEach((id, i) => {
      const want = expected.latest.get(id)!;
      const got = latest[i] ? JSON.parse(latest[i]!) : null;
      if (!got) problems.push(`latest ${id}: missing`);
      else if (got.event_id !== want.event_id || !compareFloat(got.price, want.price)) {
        problems.push(
          `latest ${id}: got ${got.event_id}@${got.price}, want ${want.event_id}@${want.price}`,
        );
      }
    });
    const newest = [...expected.newestBars.entries()];
    const bars = newest.length
      ? await redis.mget(newest.map(([k]) => {
        const [res, id] = k.split("|");
        return `${prefix}projection:bar:${res}:${id}`;
      }))
      : [];
    newest.forEach(([k, want], i) => {
      const got = bars[i] ? JSON.parse(bars[i]!) : null;
      if (!got) problems.push(`bar projection ${k}: missing`);
      else {
        const diff = barDifferences(got, want);
        if (diff.length) problems.push(`bar projection ${k}: ${diff.join("; ")}`);
      }
    });
    const rows = await queryRows<GoldBarRow>(
      ch,
      `SELECT * FROM ${env.config.DATA_PROC_CLICKHOUSE_GOLD_DB}.bars FINAL`,
    );
    const seen = new Set<string>();
    for (const row of rows) {
      const key = barKey(row.instrument_id, row.resolution, Number(row.start_ms));
      seen.add(key);
      const want = expected.bars.get(key);
      if (!want) {
        problems.push(`gold bar ${key}: not expected`);
        continue;
      }
      const diff = barDifferences({
        ...row,
        start_ms: Number(row.start_ms),
        end_ms: Number(row.end_ms),
        count: Number(row.count),
      }, want);
      if (diff.length) problems.push(`gold bar ${key}: ${diff.join("; ")}`);
    }
    for (const key of expected.bars.keys()) {
      if (!seen.has(key)) problems.push(`gold bar ${key}: missing`);
    }
  } finally {
    await closeRedis(redis);
    await ch.close();
  }
  return problems;
}

/** Rows of gold.bars (not FINAL) that share (bar, version) but differ in content. */
export async function conflictingVersions(env: TestEnv): Promise<number> {
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  try {
    const rows = await queryRows<{ n: string }>(
      ch,
      `SELECT count() AS n FROM (
         SELECT instrument_id, resolution, start_ms, version,
                uniqExact(open, high, low, close, volume, count, final) AS variants
         FROM ${env.config.DATA_PROC_CLICKHOUSE_GOLD_DB}.bars
         GROUP BY instrument_id, resolution, start_ms, version
         HAVING variants > 1)`,
    );
    return Number(rows[0]?.n ?? 0);
  } finally {
    await ch.close();
  }
}

/**
 * Polls until every projection and gold bar equals `expected`; on timeout the error lists the
 * first differences and, when a node is given, its last warnings.
 */
export async function waitExact(
  env: TestEnv,
  expected: ExpectedInstruments,
  node?: { log(): string },
): Promise<void> {
  let last: string[] = [];
  try {
    await pollUntil("projections equal to the expected result", async () => {
      last = await instrumentDifferences(env, expected);
      return last.length === 0 ? true : undefined;
    }, { timeoutMs: 150_000, intervalMs: 500 });
  } catch (err) {
    const warnings = (node?.log() ?? "").split("\n")
      .filter((l) => /"level":"(warn|error)"/.test(l)).slice(-15).join("\n");
    throw new Error(
      `${(err as Error).message}\nfirst differences:\n${last.slice(0, 10).join("\n")}\n` +
        `node warnings:\n${warnings}`,
    );
  }
}
