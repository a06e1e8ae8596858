/**
 * `deno task bench`: end-to-end benchmark of the actor stage on the local stack.
 *
 * One fresh, isolated environment (topic prefix, consumer groups, Redis prefix, ClickHouse
 * and PostgreSQL databases) and four scenarios:
 *  1. baseline   - a plain kafkajs consumer (fresh group, same consumer settings as the
 *                  node) reads every pre-produced event, UTF-8 decode + JSON.parse only;
 *                  once before the node's throughput run and once after it (mean of both);
 *  2. throughput - ONE real node (child process, `main.ts`, normalizer disabled) consumes
 *                  the same events; done = the group's committed offsets reach the end
 *                  offsets (what the node commits only after every sink acknowledged);
 *  3. latency    - a steady producer at half the measured max (or --rate) into the running
 *                  node; p50/p99 of Kafka append -> actor applied from the node's
 *                  `processing_latency_ms{stage="aggregate"}` histogram (difference of a
 *                  scrape before and after, interpolated within buckets); without --rate,
 *                  again at a quarter of the max;
 *  4. memory     - a second node on its own topics: --memory-instruments instruments seen
 *                  with passivation on (cap --max-live), peak RSS (VmHWM) and live actors;
 *  5. handoff    - a second node joins (bench_handoff.ts);
 *  6. replay     - live p99 with and without a replay of 100 keys x 10k bars, progress and
 *                  rebalances (bench_replay.ts).
 * Prints a table, the targets and whether each is met, and one `BENCH_JSON {...}`
 * line for machines. Everything it created is removed unless --keep.
 */
import type { Kafka } from "kafkajs";
import { isControlRecord } from "../messages/watermark.ts";
import { createKafka, createProducer, ensureTopics, topicNames } from "../stores/kafka.ts";
import { createRedis } from "../stores/redis.ts";
import { seededRandom } from "../tests/expected.ts";
import { freshEnv, type TestEnv } from "../tests/support.ts";
import { sleep } from "../timing/sleep.ts";
import { parseFlags, stringFlag, UsageError } from "./cli_args.ts";
import { produceAll, producePaced, TickStream } from "./bench_events.ts";
import { freeInspectorPort, heapUsedAfterGc } from "./bench_heap.ts";
import { runHandoff } from "./bench_handoff.ts";
import { runReplay } from "./bench_replay.ts";
import {
  buildPeer,
  cleanupPeer,
  ensurePeerTopics,
  type PeerGuarantee,
  runPeer,
} from "./bench_peer.ts";
import {
  type BaselineResult,
  bracketedBaseline,
  type Figures,
  halfMaxRate,
  report,
} from "./bench_report.ts";
import {
  type BenchNode,
  cpuSecondsOf,
  endOffsets,
  fmtMiB,
  fmtMs,
  fmtRate,
  log,
  memoryOf,
  metricValue,
  runLatency,
  sampled,
  scrape,
  spawnBenchNode,
  stampAppendTime,
  timelineLine,
  waitReady,
  watchNode,
} from "./bench_support.ts";

const REPO = new URL("..", import.meta.url).pathname;
const DEFAULT_PEER_DIR = new URL("../../shared/bench-peer", import.meta.url).pathname;
/** The peer's writable copy (gitignored): the shared folder is read-only. */
const PEER_BUILD_DIR = `${REPO}.bench-peer`;

const HELP = `deno task bench [options]

End-to-end benchmark of one node's actor stage on the local stack (Kafka, Redis,
ClickHouse, PostgreSQL), in a fresh isolated environment that is removed afterwards.

Options:
  --events N              events for the baseline/throughput runs (default 1000000)
  --instruments N         instruments, Zipf-skewed (default 5000)
  --skew X                Zipf exponent over instruments (default 1.0)
  --partitions N          partitions of the normalized topic (default 6)
  --rate N                events/s for the latency run (default: half the measured max,
                          then again a quarter of it)
  --duration S            seconds of each latency run (default 30)
  --memory-instruments N  instruments seen in the memory run (default 100000)
  --memory-rate N         events/s produced into the running node in the memory run
                          (default: half the measured max, 20000 without a throughput
                          run); 0 = pre-produce everything (a backlog, as after downtime)
  --max-live N            DATA_PROC_MAX_LIVE_ACTORS for the memory run (default 20000)
  --scenario S            all | throughput | latency | memory | handoff | replay (default
                          all); latency includes the throughput run it needs for the max rate
  --peer                  also run the Kafka Streams peer (Java, built with Maven from
                          --peer-dir into .bench-peer/) on the node's topic after the
                          node's throughput run: same events, same partitions
  --peer-dir DIR          the peer's sources (default ../shared/bench-peer)
  --peer-guarantees G,..  at_least_once,exactly_once_v2 (default both)
  --peer-threads N        the peer's stream threads (default: one per core)
  --handoff-actors N      instrument actors per partition in the handoff run (default
                          10000; 2 partitions)
  --handoff-rate N        events/s produced while the second node joins (default 2000)
  --replay-keys N         instruments replayed in the replay run (default 100)
  --replay-bars N         one-minute bars of history per replayed instrument (default 10000)
  --replay-rate N         events/s of live traffic (other instruments) in the replay run
                          (default: a quarter of the measured max, 5000 without a
                          throughput run)
  --replay-max-records-per-s N
                          DATA_PROC_REPLAY_MAX_RECORDS_PER_S of the replay run's node
                          (default 0: no cap)
  --quick                 100k events, 10 s latency run, memory run with one event per
                          instrument, replay of 1000 bars per instrument
  --workers N             DATA_PROC_WORKERS of every node the bench runs (default: one
                          thread per core)
  --node-flags="F..."     extra deno flags for the node processes (e.g. "--cpu-prof
                          --cpu-prof-dir=/tmp/prof"; profiles are written at SIGTERM)
  --timeout S             upper bound per phase in seconds (default 300)
  --keep                  keep topics, groups, Redis keys and databases
  --help                  this text
`;

export interface BenchOptions {
  events: number;
  instruments: number;
  skew: number;
  partitions: number;
  rate: number | null;
  durationS: number;
  memoryInstruments: number;
  memoryEvents: number;
  /** Events/s for the memory run; null: half the measured max (20k/s without it); 0: backlog. */
  memoryRate: number | null;
  maxLive: number;
  scenario: "all" | "throughput" | "latency" | "memory" | "handoff" | "replay";
  peer: boolean;
  peerDir: string;
  peerGuarantees: PeerGuarantee[];
  peerThreads: number;
  handoffActors: number;
  handoffRate: number;
  replayKeys: number;
  replayBars: number;
  /** Live events/s in the replay run; null: a quarter of the measured max (5000 without). */
  replayRate: number | null;
  /** DATA_PROC_REPLAY_MAX_RECORDS_PER_S of the replay node (0: no cap). */
  replayMaxRecordsPerS: number;
  /** DATA_PROC_WORKERS of the nodes (threads, each a consumer-group member). */
  workers: number;
  nodeFlags: string[];
  timeoutMs: number;
  keep: boolean;
}

function positive(name: string, text: string | undefined, fallback: number, integer = true) {
  if (text === undefined) return fallback;
  const n = Number(text.replaceAll("_", ""));
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new UsageError(`--${name} must be a ${integer ? "positive integer" : "number > 0"}`);
  }
  return n;
}

function nonNegative(name: string, text: string | undefined): number | null {
  if (text === undefined) return null;
  const n = Number(text.replaceAll("_", ""));
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`--${name} must be an integer >= 0`);
  return n;
}

export function parseBenchArgs(args: readonly string[]): BenchOptions | "help" {
  const v = parseFlags(args, {
    events: { type: "string" },
    instruments: { type: "string" },
    skew: { type: "string" },
    partitions: { type: "string" },
    rate: { type: "string" },
    duration: { type: "string" },
    "memory-instruments": { type: "string" },
    "memory-rate": { type: "string" },
    "max-live": { type: "string" },
    scenario: { type: "string" },
    peer: { type: "boolean" },
    "peer-dir": { type: "string" },
    "peer-guarantees": { type: "string" },
    "peer-threads": { type: "string" },
    "handoff-actors": { type: "string" },
    "handoff-rate": { type: "string" },
    "replay-keys": { type: "string" },
    "replay-bars": { type: "string" },
    "replay-rate": { type: "string" },
    "replay-max-records-per-s": { type: "string" },
    quick: { type: "boolean" },
    "node-flags": { type: "string" },
    workers: { type: "string" },
    timeout: { type: "string" },
    keep: { type: "boolean" },
    help: { type: "boolean" },
  });
  if (v.help) return "help";
  const quick = v.quick === true;
  const scenario = stringFlag(v, "scenario") ?? "all";
  if (!["all", "throughput", "latency", "memory", "handoff", "replay"].includes(scenario)) {
    throw new UsageError(
      `--scenario must be all, throughput, latency, memory, handoff or replay`,
    );
  }
  const guarantees = (stringFlag(v, "peer-guarantees") ?? "at_least_once,exactly_once_v2")
    .split(",").filter((g) => g.length > 0);
  if (
    guarantees.length === 0 ||
    guarantees.some((g) => g !== "at_least_once" && g !== "exactly_once_v2")
  ) {
    throw new UsageError("--peer-guarantees must list at_least_once and/or exactly_once_v2");
  }
  const skewText = stringFlag(v, "skew");
  const skew = skewText === undefined ? 1 : Number(skewText);
  if (!(skew >= 0)) throw new UsageError("--skew must be a number >= 0");
  const memoryInstruments = positive(
    "memory-instruments",
    stringFlag(v, "memory-instruments"),
    100_000,
  );
  const rateText = stringFlag(v, "rate");
  const replayRateText = stringFlag(v, "replay-rate");
  return {
    events: positive("events", stringFlag(v, "events"), quick ? 100_000 : 1_000_000),
    instruments: positive("instruments", stringFlag(v, "instruments"), 5000),
    skew,
    partitions: positive("partitions", stringFlag(v, "partitions"), 6),
    rate: rateText === undefined ? null : positive("rate", rateText, 0),
    durationS: positive("duration", stringFlag(v, "duration"), quick ? 10 : 30, false),
    memoryInstruments,
    memoryEvents: quick ? memoryInstruments : 2 * memoryInstruments,
    memoryRate: nonNegative("memory-rate", stringFlag(v, "memory-rate")),
    maxLive: positive("max-live", stringFlag(v, "max-live"), 20_000),
    scenario: scenario as BenchOptions["scenario"],
    peer: v.peer === true,
    peerDir: stringFlag(v, "peer-dir") ?? DEFAULT_PEER_DIR,
    peerGuarantees: guarantees as PeerGuarantee[],
    peerThreads: positive(
      "peer-threads",
      stringFlag(v, "peer-threads"),
      navigator.hardwareConcurrency,
    ),
    handoffActors: positive("handoff-actors", stringFlag(v, "handoff-actors"), 10_000),
    handoffRate: positive("handoff-rate", stringFlag(v, "handoff-rate"), 2000),
    replayKeys: positive("replay-keys", stringFlag(v, "replay-keys"), 100),
    replayBars: positive("replay-bars", stringFlag(v, "replay-bars"), quick ? 1000 : 10_000),
    replayRate: replayRateText === undefined ? null : positive("replay-rate", replayRateText, 0),
    replayMaxRecordsPerS:
      nonNegative("replay-max-records-per-s", stringFlag(v, "replay-max-records-per-s")) ?? 0,
    workers: positive("workers", stringFlag(v, "workers"), navigator.hardwareConcurrency),
    nodeFlags: (stringFlag(v, "node-flags") ?? "").split(/\s+/).filter((f) => f.length > 0),
    timeoutMs: positive("timeout", stringFlag(v, "timeout"), 300, false) * 1000,
    keep: v.keep === true,
  };
}

// ---------------------------------------------------------------------------------------
// Scenarios

/** A plain kafkajs consumer in a fresh group, the node's consumer settings, JSON.parse only. */
async function runBaseline(
  kafka: Kafka,
  topic: string,
  groupId: string,
  events: number,
  timeoutMs: number,
): Promise<BaselineResult> {
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 2 * 1024 * 1024,
  });
  const utf8 = new TextDecoder();
  let count = 0;
  let first = 0;
  let last = 0;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => (resolveDone = r));
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      partitionsConsumedConcurrently: 4,
      eachBatch: async ({ batch, heartbeat }) => {
        if (first === 0) first = performance.now();
        for (const m of batch.messages) {
          if (isControlRecord(m.headers)) continue; // watermarks are not events
          if (m.value) JSON.parse(utf8.decode(m.value));
          count++;
        }
        last = performance.now();
        if (count >= events) resolveDone();
        await heartbeat();
      },
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      done,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`baseline read ${count}/${events} within the timeout`)),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
  } finally {
    await consumer.disconnect();
  }
  const seconds = (last - first) / 1000;
  return { events: count, seconds, eventsPerSecond: count / seconds };
}

// ---------------------------------------------------------------------------------------
// Main

async function cleanupAll(
  env: TestEnv,
  kafka: Kafka,
  prefixes: string[],
  groups: string[],
): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const topics = (await admin.listTopics()).filter((t) => prefixes.some((p) => t.startsWith(p)));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    const existing = new Set((await admin.listGroups()).groups.map((g) => g.groupId));
    const mine = groups.filter((g) => existing.has(g));
    if (mine.length > 0) await admin.deleteGroups(mine).catch(() => {});
  } catch (err) {
    log(`cleanup: Kafka: ${(err as Error).message}`);
  } finally {
    await admin.disconnect();
  }
  const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
  try {
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(
        cursor,
        "MATCH",
        `${env.config.DATA_PROC_REDIS_PREFIX}*`,
        "COUNT",
        5000,
      );
      cursor = next;
      if (keys.length > 0) await redis.unlink(...keys);
    } while (cursor !== "0");
  } catch (err) {
    log(`cleanup: Redis: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }
  await env.cleanup().catch((err) => log(`cleanup: databases: ${(err as Error).message}`));
}

async function run(o: BenchOptions): Promise<Figures> {
  const figures: Figures = { options: o, errors: [] };
  log("making a fresh environment");
  const env = await freshEnv({
    DATA_PROC_NORMALIZED_PARTITIONS: String(o.partitions),
    DATA_PROC_PROJECTION_REFRESH_INTERVAL: "1",
    DATA_PROC_NORMALIZER_ENABLED: "false",
    DATA_PROC_LOG_LEVEL: "warn",
    DATA_PROC_WORKERS: String(o.workers),
  });
  const prefix = env.config.DATA_PROC_TOPIC_PREFIX;
  const memPrefix = `${prefix}mem.`;
  const group = env.config.DATA_PROC_GROUP_ID;
  const memGroup = `${group}-mem`;
  const handoffPrefix = `${prefix}ho.`;
  const handoffGroup = `${group}-ho`;
  const replayPrefix = `${prefix}rp.`;
  const replayGroup = `${group}-rp`;
  const baselineGroup = `${group}-baseline`;
  const baselineAfterGroup = `${group}-baseline-after`;
  const groups = [
    `${group}.actors`,
    `${memGroup}.actors`,
    `${handoffGroup}.actors`,
    `${replayGroup}.actors`,
    baselineGroup,
    baselineAfterGroup,
  ];
  const peerApplicationIds: string[] = [];
  const peerTopicsCreated: string[] = [];
  const kafka = createKafka(env.config.DATA_PROC_KAFKA_BOOTSTRAP, `bench-${env.id}`);
  const admin = kafka.admin();
  const producer = createProducer(kafka);
  const nodes: BenchNode[] = [];
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    log("interrupted: stopping nodes and cleaning up");
    void (async () => {
      await Promise.all(nodes.map((n) => n.stop()));
      if (!o.keep) {
        await cleanupAll(env, kafka, [prefix], groups);
        await cleanupPeerQuietly();
      }
      Deno.exit(130);
    })();
  };
  const cleanupPeerQuietly = async () => {
    const peerAdmin = kafka.admin();
    try {
      await peerAdmin.connect();
      await cleanupPeer(peerAdmin, peerApplicationIds, peerTopicsCreated);
    } catch (err) {
      log(`cleanup: peer: ${(err as Error).message}`);
    } finally {
      await peerAdmin.disconnect().catch(() => {});
    }
  };
  Deno.addSignalListener("SIGINT", onSignal);
  try {
    await admin.connect();
    await producer.connect();
    const topic = topicNames(prefix).normalizedTicks;
    const runHandoffScenario = async (): Promise<void> => {
      const partitions = 2;
      const instruments = partitions * o.handoffActors;
      log(`handoff: ${instruments} instruments on ${partitions} partitions, second node joins`);
      const topics = topicNames(handoffPrefix);
      await ensureTopics(admin, topics, partitions);
      figures.handoff = await runHandoff({
        admin,
        producer,
        env: {
          ...env.env,
          DATA_PROC_TOPIC_PREFIX: handoffPrefix,
          DATA_PROC_GROUP_ID: handoffGroup,
          DATA_PROC_REDIS_PREFIX: `${env.config.DATA_PROC_REDIS_PREFIX}ho:`,
          DATA_PROC_NORMALIZED_PARTITIONS: String(partitions),
        },
        nodeFlags: o.nodeFlags,
        topic: topics.normalizedTicks,
        groupId: `${handoffGroup}.actors`,
        partitions,
        instruments,
        stream: new TickStream({
          random: seededRandom(11),
          instruments,
          skew: o.skew,
          sweep: true,
          partitions,
          timeOf: () => Date.now(),
        }),
        rate: o.handoffRate,
        timeoutMs: o.timeoutMs,
        track: (n) => nodes.push(n),
      });
      log(`  revoke -> first applied ${fmtMs(figures.handoff.revokeToFirstAppliedMs)}`);
      await Promise.all(nodes.map((n) => n.stop()));
    };

    const runReplayScenario = async (): Promise<void> => {
      const keys = o.replayKeys;
      const bars = o.replayBars;
      const rate = o.replayRate ??
        (figures.throughput ? Math.round(figures.throughput.appliedPerSecond / 4) : 5000);
      log(`replay: ${keys} instruments x ${bars} one-minute bars, live traffic ${rate}/s`);
      const topics = topicNames(replayPrefix);
      await ensureTopics(admin, topics, o.partitions);
      await stampAppendTime(admin, topics.normalizedTicks);
      // Whole minutes ending before now: round r of the cycle is minute r for every key.
      const t0 = (Math.floor(Date.now() / 60_000) - bars - 1) * 60_000;
      const history = new TickStream({
        random: seededRandom(13),
        instruments: keys,
        skew: 0,
        cycle: true,
        partitions: o.partitions,
        timeOf: (i) => t0 + Math.floor((i * 60_000) / keys),
      });
      figures.replay = await runReplay({
        admin,
        producer,
        env: {
          ...env.env,
          DATA_PROC_TOPIC_PREFIX: replayPrefix,
          DATA_PROC_GROUP_ID: replayGroup,
          DATA_PROC_REDIS_PREFIX: `${env.config.DATA_PROC_REDIS_PREFIX}rp:`,
          DATA_PROC_BAR_WINDOWS: "1m",
          DATA_PROC_REPLAY_MAX_RECORDS_PER_S: String(o.replayMaxRecordsPerS),
        },
        nodeFlags: o.nodeFlags,
        topic: topics.normalizedTicks,
        groupId: `${replayGroup}.actors`,
        history,
        historyEvents: keys * bars,
        keys,
        barsPerKey: bars,
        range: { fromKey: history.instrumentId(0), toKey: history.instrumentId(keys - 1) },
        live: new TickStream({
          random: seededRandom(17),
          instruments: o.instruments,
          skew: o.skew,
          sweep: true,
          idPrefix: "LIVE-",
          partitions: o.partitions,
          timeOf: () => Date.now(),
        }),
        liveInstruments: o.instruments,
        rate,
        durationS: o.durationS,
        timeoutMs: o.timeoutMs,
        track: (n) => nodes.push(n),
      });
      const r = figures.replay;
      log(
        `  live p99 ${fmtMs(r.without.p99Ms)} without, ${fmtMs(r.with.p99Ms)} with the replay, ` +
          `${fmtMs(r.after.p99Ms)} after it; ${r.rebalances} rebalances`,
      );
      await Promise.all(nodes.map((n) => n.stop()));
    };

    const failed = (scenario: string) => (err: unknown) => {
      const message = err instanceof Error ? err.message : String(err);
      log(`${scenario} failed: ${message}`);
      figures.errors.push(`${scenario}: ${message.split("\n")[0]}`);
    };
    let peerBuilt = false;
    if (o.peer && ["all", "throughput", "latency"].includes(o.scenario)) {
      log(`peer: building ${o.peerDir} in ${PEER_BUILD_DIR} (mvn package)`);
      await buildPeer(o.peerDir, PEER_BUILD_DIR).then(
        () => (peerBuilt = true),
        failed("peer build"),
      );
    }
    // The peer runs on the node's topic while the node, done with it, idles (its CPU is
    // reported): same events, same partitions, and the latency run after it is unchanged.
    const runPeers = async (node: BenchNode, topic: string, ends: Map<number, number>) => {
      peerTopicsCreated.push(...await ensurePeerTopics(admin, o.partitions));
      const cpuBefore = await cpuSecondsOf(node.pid);
      figures.peer = [];
      for (const guarantee of o.peerGuarantees) {
        log(`peer: Kafka Streams ${guarantee}, ${o.peerThreads} threads, ${o.events} records`);
        try {
          const result = await runPeer({
            admin,
            bootstrap: env.config.DATA_PROC_KAFKA_BOOTSTRAP,
            topic,
            records: o.events,
            ends,
            guarantee,
            dir: PEER_BUILD_DIR,
            threads: o.peerThreads,
            timeoutMs: o.timeoutMs,
            onApplicationId: (id) => peerApplicationIds.push(id),
          });
          figures.peer.push(result);
          log(
            `  ${fmtRate(result.recordsPerSecond)} committed, peak RSS ${
              fmtMiB(result.peakRssBytes)
            }`,
          );
        } catch (err) {
          failed(`peer ${guarantee}`)(err);
        }
      }
      figures.nodeCpuSecondsDuringPeer = (await cpuSecondsOf(node.pid)) - cpuBefore;
    };

    const runThroughputAndLatency = async (): Promise<void> => {
      await ensureTopics(admin, topicNames(prefix), o.partitions);
      await stampAppendTime(admin, topic);
      const spreadMs = Math.round((o.events / 5000) * 1000); // event time: 5k events/s
      const t0 = Date.now() - spreadMs;
      const stream = new TickStream({
        random: seededRandom(42),
        instruments: o.instruments,
        skew: o.skew,
        partitions: o.partitions,
        timeOf: (i) => i < o.events ? t0 + Math.floor((i * spreadMs) / o.events) : Date.now(),
      });
      log(`producing ${o.events} events`);
      figures.produceRate = await produceAll(producer, topic, stream, o.events);
      log(`  ${fmtRate(figures.produceRate)}`);
      const ends = await endOffsets(admin, topic);

      log("baseline: raw kafkajs consume");
      figures.baseline = await runBaseline(kafka, topic, baselineGroup, o.events, o.timeoutMs);
      log(`  ${fmtRate(figures.baseline.eventsPerSecond)}`);

      log("throughput: starting one node");
      const spawned = performance.now();
      const node = spawnBenchNode(env.env, o.nodeFlags, { keepLines: /"slow flush"/ });
      nodes.push(node);
      await waitReady(node, 60_000);
      const ready = performance.now();
      const cpuAtReady = await cpuSecondsOf(node.pid);
      const w = await watchNode(node, admin, `${group}.actors`, topic, ends, {
        appliedBase: 0,
        events: o.events,
        timeoutMs: o.timeoutMs,
      });
      const cpuSeconds = (await cpuSecondsOf(node.pid)) - cpuAtReady;
      // The first poll that saw applied events is up to one poll (100 ms + scrape) late.
      const from = Math.min(w.firstApplied, ready);
      figures.throughput = {
        events: o.events,
        secondsToApplied: (w.allApplied - from) / 1000,
        secondsToCommitted: (w.committed - from) / 1000,
        appliedPerSecond: o.events / ((w.allApplied - from) / 1000),
        committedPerSecond: o.events / ((w.committed - from) / 1000),
        startupSeconds: (ready - spawned) / 1000,
        peakRssBytes: (await memoryOf(node.pid)).peak,
        liveActors: w.maxLive,
        cpuMicrosPerEvent: (cpuSeconds * 1e6) / o.events,
      };
      log(`  ${fmtRate(figures.throughput.committedPerSecond)} committed`);

      // The plain consumer again, the node caught up: see bracketedBaseline.
      log("baseline: raw kafkajs consume, again after the node");
      const after = await runBaseline(kafka, topic, baselineAfterGroup, o.events, o.timeoutMs);
      figures.baseline = bracketedBaseline(figures.baseline, after);
      log(`  ${fmtRate(after.eventsPerSecond)}`);

      if (peerBuilt) await runPeers(node, topic, ends);

      if (o.scenario === "all" || o.scenario === "latency") {
        const rate = o.rate ?? halfMaxRate(figures.throughput);
        log(`latency: ${rate} events/s for ${o.durationS} s`);
        const { result, timeline } = await sampled(
          node,
          () =>
            runLatency(node, admin, producer, topic, `${group}.actors`, stream, {
              rate,
              durationS: o.durationS,
              timeoutMs: o.timeoutMs,
            }),
        );
        figures.latency = result;
        log(`  p50 ${fmtMs(result.p50Ms)} p99 ${fmtMs(result.p99Ms)}`);
        log(timelineLine("seconds", timeline));
        if (o.rate === null) {
          // Where the node stands off saturation: at half the max, two cores are nearly full.
          const quarter = Math.round(rate / 2);
          log(`latency: a quarter of the max, ${quarter} events/s for ${o.durationS} s`);
          figures.latencyQuarterMax = await runLatency(
            node,
            admin,
            producer,
            topic,
            `${group}.actors`,
            stream,
            { rate: quarter, durationS: o.durationS, timeoutMs: o.timeoutMs },
          );
          const q = figures.latencyQuarterMax;
          log(`  p50 ${fmtMs(q.p50Ms)} p99 ${fmtMs(q.p99Ms)}`);
        }
      }
      // Where the slowest flushes spent their time (the node logs flushes over 1 s).
      for (const { line } of node.keptLines().slice(-5)) log(`  ${line}`);
      await node.stop();
    };

    const runMemory = async (): Promise<void> => {
      log(`memory: ${o.memoryInstruments} instruments, max live ${o.maxLive}`);
      const memTopics = topicNames(memPrefix);
      await ensureTopics(admin, memTopics, o.partitions);
      const stream = new TickStream({
        random: seededRandom(7),
        instruments: o.memoryInstruments,
        skew: o.skew,
        sweep: true,
        partitions: o.partitions,
        timeOf: () => Date.now(),
      });
      const rate = o.memoryRate ??
        (figures.throughput ? halfMaxRate(figures.throughput) : 20_000);
      if (rate === 0) {
        log(`  pre-producing ${o.memoryEvents} events (backlog)`);
        await produceAll(producer, memTopics.normalizedTicks, stream, o.memoryEvents);
      }
      const inspectorPort = freeInspectorPort();
      const node = spawnBenchNode({
        ...env.env,
        DATA_PROC_TOPIC_PREFIX: memPrefix,
        DATA_PROC_GROUP_ID: memGroup,
        DATA_PROC_REDIS_PREFIX: `${env.config.DATA_PROC_REDIS_PREFIX}mem:`,
        DATA_PROC_MAX_LIVE_ACTORS: String(o.maxLive),
      }, [...o.nodeFlags, `--inspect=127.0.0.1:${inspectorPort}`]);
      nodes.push(node);
      await waitReady(node, 60_000);
      // The empty node: what the live actors are measured against.
      const heapAtReady = await heapUsedAfterGc(inspectorPort);
      const rssAtReady = (await memoryOf(node.pid)).rss;
      const started = performance.now();
      if (rate > 0) {
        log(`  producing ${o.memoryEvents} events at ${rate}/s into the running node`);
        await producePaced(producer, memTopics.normalizedTicks, stream, o.memoryEvents, rate);
      }
      const ends = await endOffsets(admin, memTopics.normalizedTicks);
      const w = await watchNode(
        node,
        admin,
        `${memGroup}.actors`,
        memTopics.normalizedTicks,
        ends,
        {
          appliedBase: 0,
          events: o.memoryEvents,
          timeoutMs: o.timeoutMs,
        },
      );
      // One more flush interval so the gauges show the state after passivation.
      await sleep(1500);
      const samples = await scrape(node);
      const liveActorsAtEnd = metricValue(samples, "data_processing_live_actors", {
        kind: "instrument",
      });
      const heapAtEnd = await heapUsedAfterGc(inspectorPort);
      const { peak, rss } = await memoryOf(node.pid);
      figures.memory = {
        rate,
        instruments: o.memoryInstruments,
        events: o.memoryEvents,
        maxLiveSetting: o.maxLive,
        seconds: (w.committed - started) / 1000,
        peakRssBytes: peak,
        maxLiveActorsSeen: w.maxLive,
        liveActorsAtEnd,
        heapBytesPerActor: liveActorsAtEnd > 0 ? (heapAtEnd - heapAtReady) / liveActorsAtEnd : null,
        rssBytesPerActor: liveActorsAtEnd > 0 ? (rss - rssAtReady) / liveActorsAtEnd : null,
        heapAtReadyBytes: heapAtReady,
        heapAtEndBytes: heapAtEnd,
        passivations: metricValue(samples, "data_processing_actor_passivations_total", {
          kind: "instrument",
        }),
      };
      log(`  peak RSS ${fmtMiB(figures.memory.peakRssBytes)}`);
      await node.stop();
    };

    if (o.scenario === "all" || o.scenario === "throughput" || o.scenario === "latency") {
      await runThroughputAndLatency().catch(failed("throughput/latency"));
    }
    if (o.scenario === "all" || o.scenario === "memory") {
      await runMemory().catch(failed("memory"));
    }
    if (o.scenario === "all" || o.scenario === "handoff") {
      await runHandoffScenario().catch(failed("handoff"));
    }
    if (o.scenario === "all" || o.scenario === "replay") {
      await runReplayScenario().catch(failed("replay"));
    }
    return figures;
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await producer.disconnect().catch(() => {});
    await admin.disconnect().catch(() => {});
    if (!interrupted) {
      Deno.removeSignalListener("SIGINT", onSignal);
      if (o.keep) {
        log(
          `kept: topic prefix ${prefix}, groups ${group}*, Redis ${env.config.DATA_PROC_REDIS_PREFIX}*, databases ${env.config.DATA_PROC_CLICKHOUSE_GOLD_DB}`,
        );
      } else {
        log("cleaning up");
        await cleanupAll(env, kafka, [prefix], groups);
        await cleanupPeerQuietly();
      }
    }
  }
}

async function main(args: string[]): Promise<number> {
  let options: BenchOptions | "help";
  try {
    options = parseBenchArgs(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`bench: ${err.message}\nRun 'deno task bench --help' for usage.`);
      return 2;
    }
    throw err;
  }
  if (options === "help") {
    console.log(HELP);
    return 0;
  }
  try {
    const figures = await run(options);
    report(figures);
    return figures.errors.length > 0 ? 1 : 0;
  } catch (err) {
    console.error(`bench: failed: ${err instanceof Error ? err.stack : String(err)}`);
    return 3;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
