/**
 * Event time on the real stack (CONTRACT.md, "Event time"): Bronze ticks spread without keys
 * over several partitions and read at different speeds give exact bars, no `late_event`,
 * and final bars, because each normalized partition's clock comes from the watermark
 * records in it, never from how fast a partition was read. Every test runs whole nodes
 * (normalizer and actor stage) and compares with the independent oracle.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { createClickHouse, queryRows } from "../stores/clickhouse.ts";
import { createKafka, topicNames } from "../stores/kafka.ts";
import { createPostgres } from "../stores/postgres.ts";
import { createTopics, waitExact } from "./actor_harness.ts";
import { type ExpectedInstruments, expectedInstruments, seededRandom } from "./expected.ts";
import { type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { readTopic, upsertInstrument } from "./normalizer_support.ts";
import { freshEnv, pollUntil, type TestEnv } from "./support.ts";

const WINDOWS = [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }];
const LATENESS_MS = 5000;
const SOURCE = "eex";
const T0 = Date.UTC(2026, 10, 20, 9, 0, 0);

interface BronzeTick {
  partition: number;
  value: Record<string, unknown>;
  /** What the normalizer makes of it (multiplier 1), for the oracle. */
  normalized: NormalizedTick;
}

/**
 * Ticks for one Bronze partition: event times advance by `stepMs` from `startMs` and each is
 * set back by up to `disorderMs`, so the partition is out of order by at most that much.
 */
function partitionTicks(options: {
  partition: number;
  count: number;
  startMs: number;
  stepMs: number;
  disorderMs: number;
  instruments: number;
  seed: number;
  first?: number;
}): BronzeTick[] {
  const random = seededRandom(options.seed);
  const out: BronzeTick[] = [];
  const first = options.first ?? 0;
  for (let i = first; i < first + options.count; i++) {
    const n = 1 + Math.floor(random() * options.instruments);
    const symbol = `SYM-${String(n).padStart(4, "0")}`;
    const ts = options.startMs + i * options.stepMs - Math.floor(random() * options.disorderMs);
    const price = Math.round((50 + random() * 50) * 100) / 100;
    const size = Math.round((0.1 + random() * 10) * 10) / 10;
    const eventId = `p${options.partition}-${i}`;
    out.push({
      partition: options.partition,
      value: { event_id: eventId, source: SOURCE, symbol, ts, price, size },
      normalized: {
        event_id: eventId,
        instrument_id: `INST-${String(n).padStart(4, "0")}`,
        event_time_ms: ts,
        price,
        size,
        source: SOURCE,
        symbol,
        commodity: null,
        region: null,
        currency: null,
        unit: null,
        ingest_time_ms: 0,
      },
    });
  }
  return out;
}

async function seedInstruments(env: TestEnv, count: number): Promise<void> {
  const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  try {
    for (let n = 1; n <= count; n++) {
      const id = String(n).padStart(4, "0");
      await upsertInstrument(sql, {
        source: SOURCE,
        symbol: `SYM-${id}`,
        instrument_id: `INST-${id}`,
      });
    }
  } finally {
    await sql.end();
  }
}

/** Produces Bronze ticks without keys, each to the partition it names, in order. */
async function produceBronze(env: TestEnv, ticks: readonly BronzeTick[]): Promise<void> {
  const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`);
  const producer = kafka.producer();
  await producer.connect();
  try {
    const topic = topicNames(env.config.DATA_PROC_TOPIC_PREFIX).bronzeTicks;
    for (let i = 0; i < ticks.length; i += 5000) {
      await producer.send({
        topic,
        acks: -1,
        messages: ticks.slice(i, i + 5000).map((t) => ({
          partition: t.partition,
          key: null,
          value: Buffer.from(JSON.stringify(t.value)),
        })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

function expectedOf(ticks: readonly BronzeTick[]): ExpectedInstruments {
  // No watermarksAt: the oracle judges nothing late, which is what these inputs must give.
  return expectedInstruments(ticks.map((t) => t.normalized), {
    windows: WINDOWS,
    allowedLatenessMs: LATENESS_MS,
  });
}

async function dlqReasons(env: TestEnv): Promise<Record<string, number>> {
  const records = await readTopic(
    env.config.DATA_PROC_KAFKA_BOOTSTRAP,
    topicNames(env.config.DATA_PROC_TOPIC_PREFIX).dlq,
  );
  const reasons: Record<string, number> = {};
  for (const r of records) {
    const reason = JSON.parse(r.payload ?? "{}").reason as string;
    reasons[reason] = (reasons[reason] ?? 0) + 1;
  }
  return reasons;
}

interface BarRow {
  instrument_id: string;
  resolution: string;
  start_ms: string;
  end_ms: string;
  final: number;
}

async function goldBars(env: TestEnv): Promise<BarRow[]> {
  const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
  try {
    return await queryRows<BarRow>(
      ch,
      `SELECT instrument_id, resolution, start_ms, end_ms, final
       FROM ${env.config.DATA_PROC_CLICKHOUSE_GOLD_DB}.bars FINAL`,
    );
  } finally {
    await ch.close();
  }
}

async function waitAllFinal(env: TestEnv, expected: ExpectedInstruments): Promise<void> {
  await pollUntil("every bar final", async () => {
    const rows = await goldBars(env);
    return rows.length === expected.bars.size && rows.every((r) => r.final === 1)
      ? true
      : undefined;
  }, { timeoutMs: 90_000, intervalMs: 500 });
}

interface PartitionsBody {
  partitions: {
    topic: string;
    clock_ms: number | null;
    sources: { source_partition: number; watermark_ms: number | null; idle: boolean }[];
  }[];
}

async function tickPartitions(node: NodeProcess): Promise<PartitionsBody["partitions"]> {
  const body = await (await fetch(`${node.url}/partitions`)).json() as PartitionsBody;
  return body.partitions.filter((p) => p.topic.endsWith("normalized.market.ticks.v1"));
}

/** A fresh environment with its topics (3 partitions each) and `instruments` mapped. */
async function eventTimeEnv(
  instruments: number,
  overrides: Record<string, string>,
): Promise<TestEnv> {
  const env = await freshEnv({
    DATA_PROC_NORMALIZED_PARTITIONS: "3",
    DATA_PROC_ALLOWED_LATENESS_MS: String(LATENESS_MS),
    DATA_PROC_WATERMARK_INTERVAL_MS: "200",
    DATA_PROC_BAR_WINDOWS: "1m,1h",
    ...overrides,
  });
  await createTopics(env);
  await seedInstruments(env, instruments);
  return env;
}

/** 40k ticks; partition 0 twice as dense, so a time sits at different offsets in each. */
function backlog(instruments: number): BronzeTick[] {
  const common = { startMs: T0, disorderMs: 3000, instruments };
  return [
    ...partitionTicks({ ...common, partition: 0, count: 20_000, stepMs: 60, seed: 1 }),
    ...partitionTicks({ ...common, partition: 1, count: 10_000, stepMs: 120, seed: 2 }),
    ...partitionTicks({ ...common, partition: 2, count: 10_000, stepMs: 120, seed: 3 }),
  ];
}

async function replayRange(node: NodeProcess, env: TestEnv, from: string, to: string) {
  const res = await fetch(`${node.url}/replay`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${env.env.DATA_PROC_ADMIN_TOKEN}`,
    },
    body: JSON.stringify({ kind: "instrument", from_key: from, to_key: to, from_time: 0 }),
  });
  assert.equal(res.status, 202);
  const { job_id } = await res.json();
  await pollUntil("replay done", async () => {
    const job = await (await fetch(`${node.url}/replay/${job_id}`, {
      headers: { authorization: `Bearer ${env.env.DATA_PROC_ADMIN_TOKEN}` },
    })).json();
    if (job.status === "failed") throw new Error(`replay failed: ${JSON.stringify(job)}`);
    return job.status === "done" ? job : undefined;
  });
}

Deno.test({
  name:
    "a 40k keyless backlog in 3 Bronze partitions: no late_event, every bar exact and final, also after a replay",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await eventTimeEnv(200, { DATA_PROC_IDLE_CLOSE_MS: "3000" });
    const input = backlog(200);
    const expected = expectedOf(input);
    await produceBronze(env, input);
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await waitExact(env, expected, node);
      await waitAllFinal(env, expected);
      assert.deepEqual(await dlqReasons(env), {});

      await replayRange(node, env, "INST-0010", "INST-0030");
      await waitExact(env, expected, node);
      await waitAllFinal(env, expected);
      assert.deepEqual(await dlqReasons(env), {});
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name:
    "kill -9 in the middle of a keyless backlog: every bar exact and final, nothing counted twice or lost",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await eventTimeEnv(200, { DATA_PROC_IDLE_CLOSE_MS: "3000" });
    const input = backlog(200);
    const expected = expectedOf(input);
    await produceBronze(env, input);
    let node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await pollUntil("some bars written", async () => {
        const rows = await goldBars(env);
        return rows.length > 200 ? true : undefined;
      }, { timeoutMs: 90_000, intervalMs: 300 });
      await node.kill("SIGKILL");
      node = await spawnNode(env.env);
      await waitReady(node);
      await waitExact(env, expected, node);
      await waitAllFinal(env, expected);
      // The normalizer redoes the records after its last commit: repeats of counted events,
      // older than the clock's lateness, are reported as late (README: "How results stay
      // exact"); exact bars show no other event was turned away.
      const reasons = await dlqReasons(env);
      assert.deepEqual(Object.keys(reasons).filter((r) => r !== "late_event"), []);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name:
    "a Bronze partition held back holds the clock: its events are not late, and bars close as it catches up",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // Long idle time: the held-back partition must not count as idle during the test.
    const env = await eventTimeEnv(50, { DATA_PROC_IDLE_CLOSE_MS: "600000" });
    const fast = [
      ...partitionTicks({
        partition: 0,
        count: 3000,
        startMs: T0,
        stepMs: 200,
        disorderMs: 3000,
        instruments: 50,
        seed: 4,
      }),
      ...partitionTicks({
        partition: 1,
        count: 3000,
        startMs: T0,
        stepMs: 200,
        disorderMs: 3000,
        instruments: 50,
        seed: 5,
      }),
    ];
    const heldAll = partitionTicks({
      partition: 2,
      count: 3000,
      startMs: T0,
      stepMs: 200,
      disorderMs: 3000,
      instruments: 50,
      seed: 6,
    });
    const heldFirst = heldAll.slice(0, 50);
    const heldRest = heldAll.slice(50);
    const heldWatermark = Math.max(...heldFirst.map((t) => t.normalized.event_time_ms));
    await produceBronze(env, [...fast, ...heldFirst]);
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      // Everything produced so far is applied; the clock waits at the held partition.
      await pollUntil("every partition's clock at the held-back watermark", async () => {
        const parts = await tickPartitions(node);
        const all = parts.length === 3 &&
          parts.every((p) => p.clock_ms === heldWatermark && p.sources.length === 3);
        return all ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 300 });
      await waitExact(env, expectedOf([...fast, ...heldFirst]), node);
      for (const bar of await goldBars(env)) {
        if (bar.final === 1) {
          assert.ok(
            Number(bar.end_ms) + LATENESS_MS <= heldWatermark,
            `closed early: ${JSON.stringify(bar)}`,
          );
        }
      }

      await produceBronze(env, heldRest);
      const all = [...fast, ...heldAll];
      const expected = expectedOf(all);
      await waitExact(env, expected, node);
      assert.deepEqual(await dlqReasons(env), {});
      // Caught up: the clock is the smallest of the three partitions' watermarks.
      const maxOf = (p: number) =>
        Math.max(...all.filter((t) => t.partition === p).map((t) => t.normalized.event_time_ms));
      const clock = Math.min(maxOf(0), maxOf(1), maxOf(2));
      await pollUntil("bars up to the clock final", async () => {
        const rows = await goldBars(env);
        const due = rows.filter((r) => Number(r.end_ms) + LATENESS_MS <= clock);
        return due.length > 0 && due.every((r) => r.final === 1) ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 300 });
      for (const bar of await goldBars(env)) {
        if (Number(bar.end_ms) + LATENESS_MS > clock) assert.equal(bar.final, 0);
      }
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "SIGTERM with bars still open, then a restart with no new data: every bar becomes final",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await eventTimeEnv(30, { DATA_PROC_IDLE_CLOSE_MS: "20000" });
    const input = [0, 1, 2].flatMap((p) =>
      partitionTicks({
        partition: p,
        count: 1000,
        startMs: T0,
        stepMs: 500,
        disorderMs: 2000,
        instruments: 30,
        seed: 10 + p,
      })
    );
    const expected = expectedOf(input);
    await produceBronze(env, input);
    let node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await waitExact(env, expected, node);
      assert.equal(await node.kill("SIGTERM"), 0);
      const open = (await goldBars(env)).filter((r) => r.final === 0);
      assert.ok(open.length > 0, "every bar was final before the restart: nothing tested");

      node = await spawnNode(env.env);
      await waitReady(node);
      await waitAllFinal(env, expected);
      await waitExact(env, expected, node);
      assert.deepEqual(await dlqReasons(env), {});
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});
