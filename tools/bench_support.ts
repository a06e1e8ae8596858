/**
 * Shared pieces of `deno task bench`: a node as a child process (its log, its exit, its
 * peak RSS), its Prometheus metrics, committed offsets against end offsets, formatting.
 */
import type { Admin } from "kafkajs";
import { sleep } from "../timing/sleep.ts";

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
    args: ["run", "-A", ...nodeFlags, MAIN],
    env: { ...env, DATA_PROC_HTTP_PORT: String(port) },
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

export function log(message: string): void {
  console.error(`bench: ${message}`);
}

export function fmtRate(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : `${Math.round(n).toLocaleString("en-US")}/s`;
}

export function fmtMiB(n: number | undefined): string {
  return n === undefined ? "-" : `${(n / 1024 / 1024).toFixed(0)} MiB`;
}

export function fmtMs(n: number | null | undefined): string {
  return n === null || n === undefined ? "-" : `${n.toFixed(1)} ms`;
}
