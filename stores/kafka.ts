/** Kafka client factory, the topic names of CONTRACT.md, and topic creation. */
import type { Admin, LogEntry, Producer, ProducerConfig } from "kafkajs";
import { Kafka, logLevel } from "./kafkajs.ts";
import { createLogger } from "../observability/logger.ts";
import { KeyHashPartitioner } from "./kafka_partitioner.ts";
import { sleep } from "../timing/sleep.ts";

export interface Topics {
  bronzeTicks: string;
  bronzeCurves: string;
  normalizedTicks: string;
  normalizedCurves: string;
  bars: string;
  latestPrice: string;
  curveSnapshot: string;
  dlq: string;
}

/** Topic names of CONTRACT.md, optionally prefixed (tests use a fresh prefix each). */
export function topicNames(prefix = ""): Topics {
  return {
    bronzeTicks: `${prefix}ingestion.market.ticks.v1`,
    bronzeCurves: `${prefix}ingestion.curves.v1`,
    normalizedTicks: `${prefix}normalized.market.ticks.v1`,
    normalizedCurves: `${prefix}normalized.curves.v1`,
    bars: `${prefix}aggregation.bars.v1`,
    latestPrice: `${prefix}projection.latest_price.v1`,
    curveSnapshot: `${prefix}projection.curve_snapshot.v1`,
    dlq: `${prefix}dlq.data-processing.v1`,
  };
}

const kafkaLog = createLogger("kafkajs");

export function createKafka(bootstrap: string, clientId: string): Kafka {
  return new Kafka({
    clientId,
    brokers: bootstrap.split(","),
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    retry: { retries: 5, initialRetryTime: 100, maxRetryTime: 2000 },
    logLevel: logLevel.WARN,
    logCreator: () => (entry: LogEntry) => {
      const { message, ...rest } = entry.log;
      kafkaLog[kafkajsLogLevel(entry)](message, { ...rest, namespace: entry.namespace });
    },
  });
}

/**
 * The errors of a partition's leadership settling or moving (a new topic, a broker restart,
 * a leader election). kafkajs logs each response that carries one at error level, although it
 * retries them (and so does waitForLeaders): noise that would page on what heals by itself.
 * What does not heal shows in the node's own logs, as a send or a flush that keeps failing.
 */
const LEADERSHIP_ERRORS = new Set([
  "This server is not the leader for that topic-partition",
  "There is no leader for this topic-partition as we are in the middle of a leadership election",
  "This server does not host this topic-partition",
]);

/** The node's level for a kafkajs log entry (kafkajs logs at WARN and above here). */
export function kafkajsLogLevel(
  entry: Pick<LogEntry, "level" | "log">,
): "debug" | "warn" | "error" {
  const { message, error } = entry.log as { message: string; error?: unknown };
  if (message.startsWith("Response ") && LEADERSHIP_ERRORS.has(String(error))) return "debug";
  return entry.level <= logLevel.ERROR ? "error" : "warn";
}

/**
 * A producer of the node, its tools or its bench: keys go to the partitions Kafka's default
 * partitioner picks (murmur2), hashed by KeyHashPartitioner.
 */
export function createProducer(
  kafka: Kafka,
  options: Omit<ProducerConfig, "createPartitioner"> = {},
): Producer {
  return kafka.producer({ ...options, createPartitioner: KeyHashPartitioner });
}

/**
 * Creates every topic of CONTRACT.md that is missing, then waits until every partition of each
 * new one is served by its leader, so the caller may produce and consume at once.
 */
export async function ensureTopics(
  admin: Admin,
  topics: Topics,
  partitions: number,
): Promise<void> {
  await ensureTopicNames(admin, Object.values(topics), partitions);
}

/**
 * Creates those of `names` that are missing, `partitions` each, then waits until every
 * partition of each created one is served (`waitForLeaders`). Returns the names it created.
 */
export async function ensureTopicNames(
  admin: Admin,
  names: readonly string[],
  partitions: number,
): Promise<string[]> {
  const existing = new Set(await admin.listTopics());
  const wanted = names.filter((t) => !existing.has(t));
  if (wanted.length === 0) return [];
  await admin.createTopics({
    waitForLeaders: false, // its wait gives up too soon: see waitForLeaders below
    topics: wanted.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 })),
  });
  // Only the new topics: an existing partition without a leader (a broker down) is the
  // producers' and consumers' to wait out, not a reason to hold the node's start.
  await waitForLeaders(admin, wanted);
  return wanted;
}

/**
 * Polls until every partition of each topic is served by its leader: the metadata names a
 * leader for each, and the leader answers a ListOffsets for each. A broker (KRaft) publishes a
 * new topic's leaders in its metadata a moment before its replica manager leads the partitions:
 * in that window Produce and ListOffsets get NOT_LEADER_OR_FOLLOWER, and kafkajs retries a
 * failed Produce request whole, writing again what the request's other partitions took. Right
 * after creation the metadata itself may answer UNKNOWN_TOPIC_OR_PARTITION ("does not host this
 * topic-partition"), which kafkajs's own `waitForLeaders` gives up on. Every error before the
 * deadline is taken as "not yet".
 */
export async function waitForLeaders(
  admin: Admin,
  topics: readonly string[],
  { timeoutMs = 30_000, intervalMs = 100 } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let waiting = [...topics];
  for (;;) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics: waiting });
      for (const { name, partitions } of found) {
        if (partitions.length === 0 || partitions.some((p) => p.leader < 0)) continue;
        await admin.fetchTopicOffsets(name);
        waiting = waiting.filter((t) => t !== name);
      }
      if (waiting.length === 0) return;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? `: ${lastError.message}` : "";
      throw new Error(
        `topics not served by a leader on every partition after ${timeoutMs} ms: ${
          waiting.join(", ")
        }${cause}`,
      );
    }
    await sleep(intervalMs);
  }
}

/** A message for `sendChunked`: its topic, key and value, in the order to keep. */
export interface OutgoingMessage {
  topic: string;
  key: string | null;
  value: string;
}

/** Key and value bytes per Kafka request: well under the broker's message.max.bytes (1 MiB). */
export const MAX_REQUEST_BYTES = 512 * 1024;
/**
 * Messages per Kafka request. kafkajs sorts a request's messages by partition by copying the
 * partition's list at every message it adds, which is quadratic: 1,700 messages bound for one
 * partition take 9.5 ms and ~11 MB of garbage per request, 500 take 2.0 ms and ~1 MB
 * (`deno bench -A stores/kafka_request_bench.ts`).
 */
export const MAX_REQUEST_MESSAGES = 500;

/**
 * Sends messages to their topics with acks from all in-sync replicas, in requests of at most
 * MAX_REQUEST_BYTES and MAX_REQUEST_MESSAGES sent one after another, so each partition
 * receives its messages in the order given.
 */
export async function sendChunked(
  producer: Pick<Producer, "sendBatch">,
  messages: readonly OutgoingMessage[],
): Promise<void> {
  const chunks = chunkByBytes(messages, {
    maxBytes: MAX_REQUEST_BYTES,
    maxMessages: MAX_REQUEST_MESSAGES,
  });
  for (const chunk of chunks) {
    await producer.sendBatch({ acks: -1, topicMessages: byTopic(chunk) });
  }
}

/** A request's messages by topic, each topic's in the order given. */
function byTopic(
  messages: readonly OutgoingMessage[],
): { topic: string; messages: { key: string | null; value: string }[] }[] {
  const topics = new Map<string, { key: string | null; value: string }[]>();
  for (const { topic, key, value } of messages) {
    const list = topics.get(topic);
    if (list) list.push({ key, value });
    else topics.set(topic, [{ key, value }]);
  }
  return [...topics].map(([topic, list]) => ({ topic, messages: list }));
}

/**
 * Splits messages, in order, into consecutive chunks of at most `maxBytes` of key and value
 * bytes (UTF-8) and at most `maxMessages` messages, so one request per chunk stays under the
 * broker's message.max.bytes (1 MiB by default). A message larger than `maxBytes` is a chunk
 * of its own. Send the chunks one after another to keep each partition's order.
 */
function chunkByBytes<T extends { key?: string | null; value: string | null }>(
  messages: readonly T[],
  options: { maxBytes: number; maxMessages: number },
): T[][] {
  const { maxBytes, maxMessages } = options;
  if (!(maxBytes >= 1)) {
    throw new RangeError(`Cannot chunk: maxBytes must be >= 1, got ${maxBytes}`);
  }
  if (!Number.isInteger(maxMessages) || maxMessages < 1) {
    throw new RangeError(`Cannot chunk: maxMessages must be an integer >= 1, got ${maxMessages}`);
  }
  const chunks: T[][] = [];
  let chunk: T[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = utf8Length(m.key ?? "") + utf8Length(m.value ?? "");
    if (chunk.length > 0 && (bytes + size > maxBytes || chunk.length >= maxMessages)) {
      chunks.push(chunk);
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

/** Bytes of a string in UTF-8, without encoding it (a lone surrogate counts as U+FFFD). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
