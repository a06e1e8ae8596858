/**
 * Replay under live traffic in `deno task bench` (issue 10): a replay of 100 instruments
 * with ~10k one-minute bars each must show progress, cause no rebalance, and leave the live
 * keys outside its range within 2x of their p99 latency without it.
 *
 * One node on its own topic gets a pre-produced history: the replayed instruments in turn,
 * event time advancing one minute per round, so each has an event in ~10k distinct minutes
 * (watermarks as TickStream writes them). Once that is committed, live traffic on other
 * instruments (disjoint ids) warms their actors, then runs twice at the same rate:
 *  - without: `--duration` seconds of paced traffic;
 *  - with: the same, and at its start `POST /replay` of the replayed range (admin token),
 *    polled with `GET /replay/{id}` every 250 ms (without waiting for the previous answer)
 *    until an answer shows it ended; the traffic goes on until both the duration has passed
 *    and the job has ended.
 * Each window's p50/p99 is Kafka append -> applied from `processing_latency_ms{stage=
 * "aggregate"}` (difference of scrapes; a replay's rebuild records no latency and the
 * replayed keys get no live events, so only live keys are in it). Rebalances are
 * `data_processing_rebalances_total` before the first window and after the second.
 */
import type { Admin, Producer } from "kafkajs";
import { sleep } from "../timing/sleep.ts";
import { produceAll, type TickStream } from "./bench_events.ts";
import { freeInspectorPort, heapUsedAfterGc } from "./bench_heap.ts";
import {
  type BenchNode,
  endOffsets,
  type LatencyResult,
  log,
  metricValue,
  runLatency,
  sampled,
  scrape,
  spawnBenchNode,
  timelineLine,
  type TimelineSecond,
  waitReady,
  watchNode,
} from "./bench_support.ts";

const POLL_MS = 250;
const MAX_POLLS_IN_FLIGHT = 40;
const FINISHED = ["done", "failed", "cancelled"];

export interface ReplayResult {
  /** Replayed instruments and the one-minute bars (distinct minutes) each has in the history. */
  keys: number;
  barsPerKey: number;
  historyEvents: number;
  /** Pre-produced history -> committed by the node (s). */
  historyCommitSeconds: number;
  /** Live instruments (none in the replayed range) and their events/s in both windows. */
  liveInstruments: number;
  rate: number;
  /** DATA_PROC_REPLAY_MAX_RECORDS_PER_S of the node (0: no cap). */
  replayMaxRecordsPerS: number;
  without: LatencyResult;
  with: LatencyResult;
  /** The same traffic again once the replay ended (no replay). */
  after: LatencyResult;
  jobStatus: string;
  /** POST /replay sent -> the first poll answer that showed the job ended (s). */
  replaySeconds: number;
  /** Events and keys the job reports. */
  jobEvents: number;
  jobKeys: number;
  /** Every progress.percent polled (ms after the POST was sent), and the distinct values. */
  progress: { atMs: number; percent: number }[];
  distinctProgressValues: number;
  /** How long the node took to answer the POST, and its slowest answer to a poll. */
  postAnswerMs: number;
  longestPollAnswerMs: number;
  /** Assignments received by the actor consumer from before `without` to after `with`. */
  rebalances: number;
  /** p99 with the replay over the mean p99 of the windows without it (before and after). */
  p99Ratio: number | null;
  pollMs: number;
  /** Each second of each window: live events slower than SLOW_MS, and the node's heap. */
  timeline: { without: TimelineSecond[]; with: TimelineSecond[]; after: TimelineSecond[] };
}

interface JobView {
  status: string;
  progress?: { percent: number; eta_ms: number | null };
  events?: number;
  keys?: string[];
  nodes?: { error?: string }[];
}

async function announced(node: BenchNode, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    try {
      const body = await (await fetch(`${node.url}/partitions`)).json() as {
        nodes?: { partitions: unknown[] }[];
      };
      if ((body.nodes ?? []).some((n) => n.partitions.length > 0)) return;
    } catch {
      // busy
    }
    await sleep(200);
  }
  throw new Error("the node never announced its partitions (POST /replay needs an owner)");
}

/** Starts a replay of the range and polls it until it ends; returns what the polls saw. */
async function replayAndWatch(
  node: BenchNode,
  token: string,
  range: { fromKey: string; toKey: string },
  deadline: number,
) {
  const auth = { authorization: `Bearer ${token}` };
  const started = performance.now();
  const res = await fetch(`${node.url}/replay`, {
    method: "POST",
    headers: { "content-type": "application/json", ...auth },
    body: JSON.stringify({ kind: "instrument", from_key: range.fromKey, to_key: range.toKey }),
  });
  const accepted = await res.json() as { job_id?: string };
  const postAnswerMs = performance.now() - started;
  if (res.status !== 202 || !accepted.job_id) {
    throw new Error(`POST /replay answered ${res.status}: ${JSON.stringify(accepted)}`);
  }
  // A poll goes out every POLL_MS whether or not the last one was answered (a busy node
  // answers late; its answers still show what the job had stored when it read them).
  const progress: { atMs: number; percent: number }[] = [];
  let longestPollAnswerMs = 0;
  let ended: { job: JobView; atMs: number } | undefined;
  let failure: Error | undefined;
  const inFlight = new Set<Promise<void>>();
  const pollOnce = async () => {
    const asked = performance.now();
    const poll = await fetch(`${node.url}/replay/${accepted.job_id}`, { headers: auth });
    const answered = performance.now();
    longestPollAnswerMs = Math.max(longestPollAnswerMs, answered - asked);
    if (poll.status !== 200) return void await poll.body?.cancel(); // rate-limited: next one
    const job = await poll.json() as JobView;
    const atMs = Math.round(answered - started);
    if (job.progress) progress.push({ atMs, percent: job.progress.percent });
    if (FINISHED.includes(job.status) && (!ended || atMs < ended.atMs)) ended = { job, atMs };
  };
  while (!ended && !failure) {
    if (Date.now() > deadline) {
      failure = new Error(
        `replay job ${accepted.job_id} did not end (progress ${progress.at(-1)?.percent})`,
      );
      break;
    }
    if (inFlight.size < MAX_POLLS_IN_FLIGHT) {
      const p: Promise<void> = pollOnce().catch((err) => void (failure = err as Error))
        .finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await sleep(POLL_MS);
  }
  await Promise.all(inFlight);
  if (failure) throw failure;
  const { job, atMs } = ended!;
  if (job.status !== "done") {
    throw new Error(`replay job ended ${job.status}: ${job.nodes?.map((n) => n.error).join("; ")}`);
  }
  progress.sort((x, y) => x.atMs - y.atMs);
  return {
    status: job.status,
    seconds: atMs / 1000,
    events: job.events ?? 0,
    keys: job.keys?.length ?? 0,
    progress,
    postAnswerMs,
    longestPollAnswerMs,
  };
}

export async function runReplay(o: {
  admin: Admin;
  producer: Producer;
  /** The node's environment: its own topic prefix, group, Redis prefix, 1m bars. */
  env: Record<string, string>;
  nodeFlags: string[];
  topic: string;
  groupId: string;
  /** The replayed instruments in turn, one per key per minute of event time. */
  history: TickStream;
  historyEvents: number;
  keys: number;
  barsPerKey: number;
  range: { fromKey: string; toKey: string };
  /** Live traffic on instruments outside the range (its first stretch visits each once). */
  live: TickStream;
  liveInstruments: number;
  rate: number;
  durationS: number;
  timeoutMs: number;
  track: (node: BenchNode) => void;
}): Promise<ReplayResult> {
  log(`  pre-producing ${o.historyEvents} events of history (${o.keys} keys x ${o.barsPerKey})`);
  await produceAll(o.producer, o.topic, o.history, o.historyEvents);
  const loader = spawnBenchNode(o.env, o.nodeFlags);
  o.track(loader);
  await waitReady(loader, 60_000);
  const historyStarted = performance.now();
  await watchNode(loader, o.admin, o.groupId, o.topic, await endOffsets(o.admin, o.topic), {
    appliedBase: 0,
    events: o.historyEvents,
    timeoutMs: o.timeoutMs,
  });
  const historyCommitSeconds = (performance.now() - historyStarted) / 1000;
  log(`  history committed in ${historyCommitSeconds.toFixed(1)} s`);
  // The measured node starts after the history is stored, as after a deploy: the backlog left
  // every thread's heap at 1-2.5 GiB with a GC limit to match, and the first full GC of such a
  // heap (200-300 ms) would fall in whichever window met it. The inspector forces a full GC of
  // the main thread before each window too.
  await loader.stop();
  const inspectorPort = freeInspectorPort();
  const node = spawnBenchNode(o.env, [...o.nodeFlags, `--inspect=127.0.0.1:${inspectorPort}`]);
  o.track(node);
  await waitReady(node, 60_000);
  await announced(node, Date.now() + o.timeoutMs);

  // Every live actor exists before the first window, so neither window pays for creating them.
  log(`  warming ${o.liveInstruments} live instruments`);
  const warmBase = metricValue(await scrape(node), "data_processing_events_total", {
    stage: "aggregate",
    outcome: "applied",
  });
  await produceAll(o.producer, o.topic, o.live, o.liveInstruments);
  await watchNode(node, o.admin, o.groupId, o.topic, await endOffsets(o.admin, o.topic), {
    appliedBase: warmBase,
    events: o.liveInstruments,
    timeoutMs: o.timeoutMs,
  });

  const rebalances = async () =>
    metricValue(await scrape(node), "data_processing_rebalances_total", { consumer: "actors" });
  const rebalancesBefore = await rebalances();
  const window = { rate: o.rate, durationS: o.durationS, timeoutMs: o.timeoutMs };
  const collect = async () =>
    log(`  full GC: ${Math.round((await heapUsedAfterGc(inspectorPort)) / 2 ** 20)} MiB live`);
  await collect();
  log(`  without replay: ${o.rate} events/s for ${o.durationS} s`);
  const { result: without, timeline: withoutTimeline } = await sampled(
    node,
    () => runLatency(node, o.admin, o.producer, o.topic, o.groupId, o.live, window),
  );
  log(timelineLine("without", withoutTimeline));
  await collect();
  log(`  with replay of ${o.range.fromKey}..${o.range.toKey}, same traffic`);
  let job: Awaited<ReturnType<typeof replayAndWatch>> | undefined;
  const token = o.env.DATA_PROC_ADMIN_TOKEN ?? "";
  const { result: withReplay, timeline: withTimeline } = await sampled(
    node,
    () =>
      runLatency(node, o.admin, o.producer, o.topic, o.groupId, o.live, {
        ...window,
        alongside: async () => {
          job = await replayAndWatch(node, token, o.range, Date.now() + o.timeoutMs);
        },
      }),
  );
  log(timelineLine("with", withTimeline));
  if (!job) throw new Error("the replay did not report");
  // A second window without the replay, after it: the ratio is to the mean of the windows
  // before and after (A-B-A), so one quiet or one noisy baseline does not decide it.
  await collect();
  log(`  after the replay, no replay: ${o.rate} events/s for ${o.durationS} s`);
  const { result: after, timeline: afterTimeline } = await sampled(
    node,
    () => runLatency(node, o.admin, o.producer, o.topic, o.groupId, o.live, window),
  );
  log(timelineLine("after", afterTimeline));
  const rebalancesAfter = await rebalances();
  const baseline = without.p99Ms !== null && after.p99Ms !== null
    ? (without.p99Ms + after.p99Ms) / 2
    : null;
  const distinct = new Set(job.progress.map((p) => p.percent)).size;
  log(
    `  replay ${job.seconds.toFixed(1)} s, ${job.events} events, ${job.keys} keys, ` +
      `${distinct} distinct progress values`,
  );
  return {
    keys: o.keys,
    barsPerKey: o.barsPerKey,
    historyEvents: o.historyEvents,
    historyCommitSeconds,
    liveInstruments: o.liveInstruments,
    rate: o.rate,
    replayMaxRecordsPerS: Number(o.env.DATA_PROC_REPLAY_MAX_RECORDS_PER_S ?? 0),
    without,
    with: withReplay,
    jobStatus: job.status,
    replaySeconds: job.seconds,
    jobEvents: job.events,
    jobKeys: job.keys,
    progress: job.progress,
    distinctProgressValues: distinct,
    postAnswerMs: job.postAnswerMs,
    longestPollAnswerMs: job.longestPollAnswerMs,
    rebalances: rebalancesAfter - rebalancesBefore,
    after,
    p99Ratio: baseline !== null && withReplay.p99Ms !== null && baseline > 0
      ? withReplay.p99Ms / baseline
      : null,
    pollMs: POLL_MS,
    timeline: { without: withoutTimeline, with: withTimeline, after: afterTimeline },
  };
}
