/**
 * `data_processing_consumer_lag` tells the truth (observability/lag_monitor.ts) on real
 * nodes: it is the group's committed offset against the end offset, so a consumer that
 * cannot commit shows lag growing record by record (and its failed writes by sink) and
 * back to 0 once it catches up; each partition is reported only by the node that owns it,
 * and a partition that moves leaves the old owner's /metrics.
 */
import { deepStrictEqual, ok, strictEqual } from "node:assert/strict";
import { Partitioners } from "../stores/kafkajs.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka, topicNames } from "../stores/kafka.ts";
import { createPostgres } from "../stores/postgres.ts";
import { createTopics } from "./actor_harness.ts";
import { upsertInstrument } from "./normalizer_support.ts";
import { metricValue, type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil, type TestEnv } from "./support.ts";

/** `topic:partition` -> value of every data_processing_consumer_lag series on /metrics. */
async function lagSeries(node: NodeProcess): Promise<Map<string, number>> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const series = new Map<string, number>();
  const re = /^data_processing_consumer_lag\{topic="([^"]+)",partition="(\d+)"\} (\S+)$/gm;
  for (const m of text.matchAll(re)) series.set(`${m[1]}:${m[2]}`, Number(m[3]));
  return series;
}

async function produceTicksTo(env: TestEnv, partition: number, ids: string[]): Promise<void> {
  const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `t-${env.id}`);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  try {
    await producer.send({
      topic: topicNames(env.config.DATA_PROC_TOPIC_PREFIX).bronzeTicks,
      acks: -1,
      messages: ids.map((id) => ({
        partition,
        value: JSON.stringify({
          event_id: id,
          source: "eex",
          symbol: "DEBY",
          ts: Date.now(),
          price: 50,
          size: 1,
        }),
      })),
    });
  } finally {
    await producer.disconnect();
  }
}

const ids = (tag: string, n: number) => Array.from({ length: n }, (_, i) => `${tag}-${i}`);

Deno.test({
  name: "a normalizer that cannot commit shows lag growing per record, sink failures, then lag 0",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({ DATA_PROC_ACTORS_ENABLED: "false" });
    const silver = env.config.DATA_PROC_CLICKHOUSE_SILVER_DB;
    const sql = createPostgres(env.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
    const ch = createClickHouse(env.config.DATA_PROC_CLICKHOUSE_URL);
    await upsertInstrument(sql, { source: "eex", symbol: "DEBY", instrument_id: "DE-BASE" });
    const node = await spawnNode(env.env);
    const ticks = `${topicNames(env.config.DATA_PROC_TOPIC_PREFIX).bronzeTicks}:0`;
    try {
      await waitReady(node);
      await pollUntil(
        "lag 0 reported for Bronze ticks partition 0",
        async () => (await lagSeries(node)).get(ticks) === 0 ? true : undefined,
      );
      // Silver inserts now fail (an outage, retried): nothing of partition 0 is committed.
      await ch.command({ query: `RENAME TABLE ${silver}.ticks TO ${silver}.ticks_away` });
      await produceTicksTo(env, 0, ids("a", 20));
      await pollUntil(
        "lag 20 on partition 0",
        async () => (await lagSeries(node)).get(ticks) === 20 ? true : undefined,
      );
      await produceTicksTo(env, 0, ids("b", 15));
      await pollUntil(
        "lag 35 on partition 0",
        async () => (await lagSeries(node)).get(ticks) === 35 ? true : undefined,
      );
      ok(
        await metricValue(node, 'data_processing_sink_failures_total{sink="clickhouse"}') >= 1,
        "failed ClickHouse inserts counted",
      );
      // The table back: the normalizer writes, commits, and the lag drops to 0.
      await ch.command({ query: `RENAME TABLE ${silver}.ticks_away TO ${silver}.ticks` });
      await pollUntil(
        "lag back to 0",
        async () => (await lagSeries(node)).get(ticks) === 0 ? true : undefined,
        { timeoutMs: 90_000 },
      );
      const newest = await metricValue(
        node,
        `data_processing_last_event_time_seconds{topic="${ticks.slice(0, -2)}",partition="0"}`,
      );
      ok(newest > Date.now() / 1000 - 600 && newest <= Date.now() / 1000, `${newest}`);
      strictEqual(await node.kill("SIGTERM"), 0);
    } finally {
      await node.kill("SIGKILL");
      await sql.end();
      await ch.close();
      await env.cleanup();
    }
  },
});

Deno.test({
  name:
    "lag series follow ownership: a second node takes partitions, the first stops reporting them",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({ DATA_PROC_NORMALIZER_ENABLED: "false" });
    await createTopics(env);
    const topics = topicNames(env.config.DATA_PROC_TOPIC_PREFIX);
    const all = [topics.normalizedTicks, topics.normalizedCurves].flatMap((t) =>
      [0, 1, 2].map((p) => `${t}:${p}`)
    ).sort();
    const a = await spawnNode(env.env);
    let b: NodeProcess | undefined;
    try {
      await waitReady(a);
      await pollUntil("node A reports lag for every partition", async () => {
        const keys = [...(await lagSeries(a)).keys()].sort();
        return JSON.stringify(keys) === JSON.stringify(all) ? true : undefined;
      });
      b = await spawnNode(env.env);
      await waitReady(b);
      const nodeB = b;
      // Once the group settles: each partition reported by exactly one node, its owner.
      const split = await pollUntil("the partitions split between A and B", async () => {
        const [onA, onB] = [[...(await lagSeries(a)).keys()], [...(await lagSeries(nodeB)).keys()]];
        const ownedA = await owned(a);
        const ownedB = await owned(nodeB);
        const settled = onA.length > 0 && onB.length > 0 &&
          same(onA, ownedA) && same(onB, ownedB) &&
          same([...onA, ...onB], all);
        return settled ? { onA, onB } : undefined;
      }, { timeoutMs: 90_000 });
      deepStrictEqual(split.onA.filter((k) => split.onB.includes(k)), [], "never twice");
      // B leaves: A owns and reports everything again.
      strictEqual(await nodeB.kill("SIGTERM"), 0);
      await pollUntil(
        "node A reports every partition again",
        async () => same([...(await lagSeries(a)).keys()], all) ? true : undefined,
        { timeoutMs: 90_000 },
      );
      strictEqual(await a.kill("SIGTERM"), 0);
    } finally {
      await a.kill("SIGKILL");
      await b?.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

/** `topic:partition` of the actor partitions a node says it owns (GET /partitions). */
async function owned(node: NodeProcess): Promise<string[]> {
  const body = await (await fetch(`${node.url}/partitions`)).json() as {
    partitions: { topic: string; partition: number }[];
  };
  return body.partitions.map((p) => `${p.topic}:${p.partition}`);
}

function same(a: string[], b: string[]): boolean {
  return JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
}
