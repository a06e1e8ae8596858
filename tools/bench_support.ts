/**
 * Shared pieces of `deno task bench`: a node as a child process (its log, its exit, its
 * peak RSS), its Prometheus metrics, committed offsets against end offsets, paced traffic
 * and the latency of what the node applied meanwhile, formatting.
 */
import type { Admin, Producer } from "kafkajs";
import { ConfigResourceTypes } from "../stores/kafkajs.ts";
import { sleep } from "../timing/sleep.ts";
import { producePaced, type TickStream } from "./bench_events.ts";
import { startTaskEnv, startTaskV8Flags } from "./start_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
export const GIB = 1024 * 1024 * 1024;
// ---------------------------------------------------------------------------------------
// Node process, metrics, offsets

export interface BenchNode {
  pid: number;
  url: string;
  exited: Promise<number>;
  /** The exit code once the process has ended, else null. */
  exitCode(): number | null;
  log(): string;
  /** Every whole log line that matched `keepLines`, never truncated (with the time seen). */
  keptLines(): { line: string; seenMs: number }[];
  stop(): Promise<number>;
}

export function spawnBenchNode(
  env: Record<string, string>,
  nodeFlags: string[],
  options: { keepLines?: RegExp } = {},
): BenchNode {
  // The node logs at warn (no "http listening" line): give it a port known to be free.
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const child = new Deno.Command(Deno.execPath(), {
    // The start task's V8 flags first: --node-flags given later override them.
    args: ["run", "-A", ...startTaskV8Flags(), ...nodeFlags, MAIN],
    // The start task's environment too, unless the bench's own sets a variable (to compare).
    env: { ...startTaskEnv(), ...Deno.env.toObject(), ...env, DATA_PROC_HTTP_PORT: String(port) },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  // Keep only the tail of the log, but always drain the pipe (a full pipe blocks the node).
  let text = "";
  let partial = "";
  const kept: { line: string; seenMs: number }[] = [];
  const pump = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      const decoded = decoder.decode(chunk, { stream: true });
      text += decoded;
      if (text.length > 200_000) text = text.slice(-100_000);
      if (options.keepLines) {
        const parts = (partial + decoded).split("\n");
        partial = parts.pop()!;
        const seenMs = Date.now();
        for (const line of parts) if (options.keepLines.test(line)) kept.push({ line, seenMs });
      }
    }
  })();
  const exited = child.status.then(async (s) => {
    await pump;
    return s.code;
  });
  let exitCode: number | null = null;
  void exited.then((code) => (exitCode = code));
  let stopping: Promise<number> | undefined;
  return {
    pid: child.pid,
    url: `http://127.0.0.1:${port}`,
    exited,
    exitCode: () => exitCode,
    log: () => text,
    keptLines: () => kept,
    stop: () => {
      stopping ??= (async () => {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        let killTimer: ReturnType<typeof setTimeout> | undefined;
        const killed = new Promise<void>((r) => {
          killTimer = setTimeout(() => {
            try {
              child.kill("SIGKILL");
            } catch {
              // already gone
            }
            r();
          }, 30_000);
        });
        const code = await Promise.race([exited, killed.then(() => exited)]);
        clearTimeout(killTimer);
        return code;
      })();
      return stopping;
    },
  };
}

export async function waitReady(node: BenchNode, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (node.exitCode() !== null) {
      throw new Error(`node exited with ${node.exitCode()}:\n${node.log().slice(-3000)}`);
    }
    try {
      const res = await fetch(`${node.url}/ready`);
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`node ${node.pid} not ready:\n${node.log().slice(-3000)}`);
}

/** The first error line of a node's JSON log (it carries the stack), or the log's tail. */
export function firstError(text: string): string {
  const line = text.split("\n").find((l) => l.includes(`"level":"error"`));
  return (line ?? text.slice(-3000)).slice(0, 4000);
}

/**
 * VmHWM (peak RSS) and VmRSS of a process, in bytes. Read through `cat`: Deno lets only
 * --allow-all read /proc, and the task runs with --allow-run already.
 */
export async function memoryOf(pid: number): Promise<{ peak: number; rss: number }> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`], stderr: "null" })
    .output();
  if (!out.success) throw new Error(`cannot read /proc/${pid}/status`);
  const status = new TextDecoder().decode(out.stdout);
  const kb = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1]);
  return { peak: kb("VmHWM") * 1024, rss: kb("VmRSS") * 1024 };
}

/** User + system CPU seconds a process used so far (`/proc/<pid>/stat`, 100 ticks/s). */
export async function cpuSecondsOf(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/stat`], stderr: "null" })
    .output();
  if (!out.success) throw new Error(`cannot read /proc/${pid}/stat`);
  // Fields after the command name (which may hold spaces), counted from field 3.
  const text = new TextDecoder().decode(out.stdout);
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseMetrics(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (line.length === 0 || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.push({ name: m[1]!, labels, value: Number(m[4]) });
  }
  return samples;
}

export async function scrape(node: BenchNode): Promise<Sample[]> {
  const res = await fetch(`${node.url}/metrics`);
  return parseMetrics(await res.text());
}

export function metricValue(
  samples: Sample[],
  name: string,
  labels: Record<string, string>,
): number {
  let sum = 0;
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** Cumulative bucket counts of a histogram (processing_latency_ms{stage="aggregate"}) by bound. */
export function latencyBuckets(
  samples: Sample[],
  name = "processing_latency_ms",
  stage: string | null = "aggregate",
): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (s.name !== `${name}_bucket` || (s.labels.stage ?? null) !== stage) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, s.value);
  }
  return buckets;
}

/**
 * The q-quantile of the observations between two scrapes of a cumulative histogram,
 * linearly interpolated within its bucket (the bucket bounds are the resolution).
 */
export function histogramQuantile(
  before: Map<number, number>,
  after: Map<number, number>,
  q: number,
): number | null {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0));
  const total = counts[counts.length - 1] ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < bounds.length; i++) {
    const upper = bounds[i]!;
    const cum = counts[i]!;
    if (cum >= rank) {
      if (upper === Infinity) return lower; // beyond the last finite bound
      const inBucket = cum - below;
      return inBucket <= 0 ? upper : lower + ((rank - below) / inBucket) * (upper - lower);
    }
    lower = upper;
    below = cum;
  }
  return null;
}

export async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  const offsets = await admin.fetchTopicOffsets(topic);
  return new Map(offsets.map((o) => [o.partition, Number(o.high)]));
}

/** Messages between the group's committed offsets and `ends` (a partition never committed counts whole). */
export async function committedLag(
  admin: Admin,
  groupId: string,
  topic: string,
  ends: Map<number, number>,
): Promise<number> {
  const fetched = await admin.fetchOffsets({ groupId, topics: [topic] });
  const committed = new Map(
    (fetched[0]?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]),
  );
  let lag = 0;
  for (const [partition, end] of ends) {
    const c = committed.get(partition) ?? -1;
    lag += end - Math.max(0, c);
  }
  return lag;
}

/**
 * Polls until the node has applied `events` more events and its group committed `ends`.
 * The committed lag comes from Kafka every 100 ms; the node's `/metrics` is scraped once a
 * second, as a fast Prometheus would: ten scrapes a second cost the node ~5% of a thread
 * (Deno's event-loop-delay histogram is summarised on every scrape), which the plain
 * consumer it is compared with never pays.
 */
export async function watchNode(
  node: BenchNode,
  admin: Admin,
  groupId: string,
  topic: string,
  ends: Map<number, number>,
  options: { appliedBase: number; events: number; timeoutMs: number },
) {
  const started = performance.now();
  let firstApplied = 0;
  let allApplied = 0;
  let maxLive = 0;
  let lastApplied = 0;
  let lastReport = started;
  let lastScrape = -Infinity;
  let peakRss = 0;
  let polls = 0;
  const readMetrics = async () => {
    const samples = await scrape(node);
    const now = performance.now();
    const previousScrape = lastScrape;
    lastScrape = now;
    const applied = metricValue(samples, "data_processing_events_total", {
      stage: "aggregate",
      outcome: "applied",
    }) - options.appliedBase;
    maxLive = Math.max(
      maxLive,
      metricValue(samples, "data_processing_live_actors", { kind: "instrument" }),
    );
    // Between two scrapes a second apart, when the count passed a mark: at a steady rate.
    const passed = (mark: number) =>
      lastApplied >= applied || now - previousScrape > 5000
        ? now
        : previousScrape + (now - previousScrape) * (mark - lastApplied) / (applied - lastApplied);
    if (applied > 0 && firstApplied === 0) firstApplied = passed(1);
    if (applied >= options.events && allApplied === 0) allApplied = passed(options.events);
    lastApplied = applied;
    return samples;
  };
  while (performance.now() - started < options.timeoutMs) {
    if (node.exitCode() !== null) {
      throw new Error(
        `node exited with ${node.exitCode()} after applying ${lastApplied}/${options.events}` +
          ` (last VmHWM seen ${fmtMiB(peakRss)}); its first error:\n${firstError(node.log())}`,
      );
    }
    if (polls++ % 5 === 0) {
      peakRss = await memoryOf(node.pid).then((m) => m.peak, () => peakRss);
    }
    let lag: number;
    let samples: Sample[] | null = null;
    try {
      lag = await committedLag(admin, groupId, topic, ends);
      if (lag === 0 || performance.now() - lastScrape >= 1000) samples = await readMetrics();
    } catch {
      await sleep(200); // the node is busy or exiting: the exit check above decides
      continue;
    }
    const now = performance.now();
    if (lag === 0) {
      return {
        firstApplied,
        allApplied: allApplied || now,
        committed: now,
        maxLive,
        applied: lastApplied,
      };
    }
    if (samples && now - lastReport > 5000) {
      const mib = (name: string) => fmtMiB(metricValue(samples, name, {}));
      log(
        `  applied ${lastApplied}/${options.events}, uncommitted ${lag}; rss ${
          mib("process_resident_memory_bytes")
        }, heap used/total ${mib("nodejs_heap_size_used_bytes")}/${
          mib("nodejs_heap_size_total_bytes")
        }, external ${mib("nodejs_external_memory_bytes")}`,
      );
      lastReport = now;
    }
    await sleep(100);
  }
  throw new Error(
    `node applied ${lastApplied}/${options.events} and did not commit everything within ${
      options.timeoutMs / 1000
    } s:\n${node.log().slice(-3000)}`,
  );
}

export interface LatencyResult {
  targetRate: number;
  achievedRate: number;
  seconds: number;
  observations: number;
  p50Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  peakRssBytes: number;
  /** Longest pause between two producer ticks (nominal 20 ms): bursts inflate latency. */
  maxProducerGapMs: number;
  /**
   * The producer's send -> acknowledgement (acks -1) per request, p50 and p99: the part of
   * each event's latency spent reaching the broker's log, before the node can see it.
   */
  producerAckP50Ms: number | null;
  producerAckP99Ms: number | null;
  /** Flushes during the run and their duration (the flush runs on the consumer's thread). */
  flushes: number;
  flushP50Ms: number | null;
  flushP99Ms: number | null;
  /**
   * CPU (user + system, all threads) per event sent, and in cores over the run's wall time:
   * the node's, and the bench process's (its producer). Both share the machine's cores with
   * the broker, so a rate they cannot afford together shows here before it shows as latency.
   */
  nodeCpuMicrosPerEvent: number;
  producerCpuMicrosPerEvent: number;
  nodeCores: number;
  producerCores: number;
}

/**
 * Steady production at `rate` events/s for `durationS`, in sends every 20 ms; then waits
 * until the node applied and committed them all, and reads p50/p99 of Kafka append ->
 * applied from the difference of two scrapes of `processing_latency_ms{stage="aggregate"}`.
 * `alongside`, when given, starts once production has begun, and production goes on until
 * it has settled too (the window covers all of it).
 */
export async function runLatency(
  node: BenchNode,
  admin: Admin,
  producer: Producer,
  topic: string,
  groupId: string,
  stream: TickStream,
  options: {
    rate: number;
    durationS: number;
    timeoutMs: number;
    alongside?: () => Promise<unknown>;
  },
): Promise<LatencyResult> {
  const before = await scrape(node);
  const appliedBase = metricValue(before, "data_processing_events_total", {
    stage: "aggregate",
    outcome: "applied",
  });
  const planned = Math.round(options.rate * options.durationS);
  const cpuBefore = { node: await cpuSecondsOf(node.pid), bench: await cpuSecondsOf(Deno.pid) };
  const wallStarted = performance.now();
  const stop = new AbortController();
  const producing = producePaced(
    producer,
    topic,
    stream,
    options.alongside ? Number.MAX_SAFE_INTEGER : planned,
    options.rate,
    stop.signal,
  );
  if (options.alongside) {
    try {
      await Promise.all([sleep(options.durationS * 1000), options.alongside()]);
    } finally {
      stop.abort();
      await producing.catch(() => {});
    }
  }
  const { seconds, maxGapMs, sent, ackMs } = await producing;
  const ends = await endOffsets(admin, topic);
  await watchNode(node, admin, groupId, topic, ends, {
    appliedBase,
    events: sent,
    timeoutMs: options.timeoutMs,
  });
  const nodeCpu = (await cpuSecondsOf(node.pid)) - cpuBefore.node;
  const benchCpu = (await cpuSecondsOf(Deno.pid)) - cpuBefore.bench;
  const wallSeconds = (performance.now() - wallStarted) / 1000;
  const after = await scrape(node);
  const b = latencyBuckets(before);
  const a = latencyBuckets(after);
  const sum = (s: Sample[]) => metricValue(s, "processing_latency_ms_sum", { stage: "aggregate" });
  const count = (s: Sample[]) =>
    metricValue(s, "processing_latency_ms_count", { stage: "aggregate" });
  const observations = count(after) - count(before);
  const flushName = "data_processing_flush_duration_seconds";
  const fb = latencyBuckets(before, flushName, null);
  const fa = latencyBuckets(after, flushName, null);
  const count2 = (s: Sample[]) => metricValue(s, `${flushName}_count`, {});
  const scaled = (x: number | null) => (x === null ? null : x * 1000);
  return {
    targetRate: options.rate,
    achievedRate: sent / seconds,
    seconds,
    observations,
    p50Ms: histogramQuantile(b, a, 0.5),
    p99Ms: histogramQuantile(b, a, 0.99),
    meanMs: observations > 0 ? (sum(after) - sum(before)) / observations : null,
    peakRssBytes: (await memoryOf(node.pid)).peak,
    maxProducerGapMs: maxGapMs,
    producerAckP50Ms: quantile(ackMs, 0.5),
    producerAckP99Ms: quantile(ackMs, 0.99),
    flushes: count2(after) - count2(before),
    flushP50Ms: scaled(histogramQuantile(fb, fa, 0.5)),
    flushP99Ms: scaled(histogramQuantile(fb, fa, 0.99)),
    nodeCpuMicrosPerEvent: sent > 0 ? (nodeCpu * 1e6) / sent : 0,
    producerCpuMicrosPerEvent: sent > 0 ? (benchCpu * 1e6) / sent : 0,
    nodeCores: nodeCpu / wallSeconds,
    producerCores: benchCpu / wallSeconds,
  };
}

/** A live event slower than this counts as slow in the timeline (a bucket bound). */
export const SLOW_MS = 100;

export interface TimelineSecond {
  /** Live events applied in this second, and those slower than SLOW_MS. */
  applied: number;
  slow: number;
  heapUsedMiB: number;
}

/**
 * Scrapes the node every second until `stop`: where in a window the slow events were (a
 * replay's start, its whole run or its swap) and how its heap moved.
 */
export async function sampleTimeline(
  node: BenchNode,
  stop: AbortSignal,
): Promise<TimelineSecond[]> {
  const out: TimelineSecond[] = [];
  let last: Map<number, number> | undefined;
  while (!stop.aborted) {
    const samples = await scrape(node).catch(() => undefined);
    if (samples) {
      const buckets = latencyBuckets(samples);
      if (last) {
        const all = (buckets.get(Infinity) ?? 0) - (last.get(Infinity) ?? 0);
        const fast = (buckets.get(SLOW_MS) ?? 0) - (last.get(SLOW_MS) ?? 0);
        out.push({
          applied: all,
          slow: all - fast,
          heapUsedMiB: Math.round(
            metricValue(samples, "nodejs_heap_size_used_bytes", {}) / 2 ** 20,
          ),
        });
      }
      last = buckets;
    }
    await sleep(1000, stop);
  }
  return out;
}

/** One line: the seconds with slow events (second:count) and the heap's range. */
export function timelineLine(name: string, seconds: TimelineSecond[]): string {
  const slow = seconds.flatMap((s, i) => (s.slow > 0 ? [`${i}:${s.slow}`] : []));
  const heap = seconds.map((s) => s.heapUsedMiB);
  return `  ${name}: ${seconds.length} s, slow (>${SLOW_MS} ms) events at ${
    slow.length > 0 ? slow.join(" ") : "none"
  }; heap used ${Math.min(...heap)}-${Math.max(...heap)} MiB`;
}

/** Runs `window` with the timeline sampled alongside it. */
export async function sampled<T>(node: BenchNode, window: () => Promise<T>) {
  const stop = new AbortController();
  const timeline = sampleTimeline(node, stop.signal);
  try {
    const result = await window();
    stop.abort();
    return { result, timeline: await timeline };
  } finally {
    stop.abort();
  }
}

/**
 * Makes the broker stamp each record of `topic` with the time it appended it
 * (`LogAppendTime`), so the node's `processing_latency_ms` is Kafka append -> applied as
 * CONTRACT.md defines it. With the default (`CreateTime`) the stamp is the bench producer's
 * send, and the latency would also count the produce request's way to the log (printed
 * apart as the producer's send -> ack).
 */
export async function stampAppendTime(admin: Admin, topic: string): Promise<void> {
  await admin.alterConfigs({
    validateOnly: false,
    resources: [{
      type: ConfigResourceTypes.TOPIC,
      name: topic,
      configEntries: [{ name: "message.timestamp.type", value: "LogAppendTime" }],
    }],
  });
}

/** The q-quantile of `values` (nearest rank), or null when there are none. */
export function quantile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
}

export function log(message: string): void {
  console.error(`bench: ${message}`);
}

export function fmtRate(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : `${Math.round(n).toLocaleString("en-US")}/s`;
}

export function fmtMicros(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : `${n.toFixed(1)} µs`;
}

export function fmtMiB(n: number | undefined): string {
  return n === undefined ? "-" : `${(n / 1024 / 1024).toFixed(0)} MiB`;
}

export function fmtMs(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : `${n.toFixed(1)} ms`;
}
