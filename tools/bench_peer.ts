/**
 * The Kafka Streams peer in `deno task bench --peer`: the same instrument job in Java
 * (`../shared/bench-peer/`), built with Maven in a writable copy and run on the node's topic
 * after the node, on the same events and partitions. Its rate is measured as the node's:
 * from its first processed record until its group's committed offsets reach the end
 * offsets; its peak RSS is the java process's VmHWM.
 */
import type { Admin } from "kafkajs";
import { ensureTopicNames } from "../stores/kafka.ts";
import { sleep } from "../timing/sleep.ts";
import { committedLag, log, memoryOf } from "./bench_support.ts";

export type PeerGuarantee = "at_least_once" | "exactly_once_v2";

/** The sink topics the peer writes; they must exist before it starts. */
export const PEER_SINK_TOPICS = ["peer.bars", "peer.latest"];

export interface PeerResult {
  guarantee: PeerGuarantee;
  /** Stream threads (the peer's default: one per core). */
  threads: number;
  records: number;
  /** First processed record -> committed offsets reach the end offsets. */
  seconds: number;
  recordsPerSecond: number;
  /** The peer's own figure: first to last record processed, before its final commit. */
  selfReportedPerSecond: number;
  /** Process start (JVM start, topology, group join included) -> committed. */
  secondsFromLaunch: number;
  peakRssBytes: number;
  /** Its application id: the consumer group and the prefix of its changelog topics. */
  applicationId: string;
}

async function runQuiet(cmd: string, args: string[], what: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    throw new Error(`${what} failed (exit ${out.code}):\n${text.slice(-3000)}`);
  }
}

/**
 * Copies the peer's sources into `into` (the shared folder is read-only) and builds them
 * with Maven (dependencies cached in ~/.m2; the first build downloads them).
 */
export async function buildPeer(source: string, into: string): Promise<void> {
  await runQuiet("mkdir", ["-p", into], "mkdir");
  await runQuiet("cp", ["-r", `${source}/.`, `${into}/`], `copying ${source}`);
  await runQuiet("mvn", ["-q", "-f", `${into}/pom.xml`, "package", "-DskipTests"], "mvn package");
}

/** Creates the peer's sink topics that are missing; returns the ones it created. */
export function ensurePeerTopics(admin: Admin, partitions: number): Promise<string[]> {
  return ensureTopicNames(admin, PEER_SINK_TOPICS, partitions);
}

/** `kstreams G: N records in S s after the first (R records/s); L s from launch` */
const DONE_LINE = /records in ([\d.]+) s after the first \((\d+) records\/s\)/;

/**
 * Runs the built peer on `topic` until it processed `records` data records (watermark
 * records decode to nothing and are not counted) and its group committed `ends`.
 * `onApplicationId` gets the peer's group as soon as it is known (for the cleanup).
 */
export async function runPeer(o: {
  admin: Admin;
  bootstrap: string;
  topic: string;
  records: number;
  ends: Map<number, number>;
  guarantee: PeerGuarantee;
  dir: string;
  threads: number;
  timeoutMs: number;
  onApplicationId: (id: string) => void;
}): Promise<PeerResult> {
  const before = new Set((await o.admin.listGroups()).groups.map((g) => g.groupId));
  const launched = Date.now();
  const child = new Deno.Command("java", {
    args: [
      "-Xmx2g",
      `-Dthreads=${o.threads}`,
      "-cp",
      `${o.dir}/target/classes:${o.dir}/target/lib/*`,
      "peer.OhlcvApp",
      o.bootstrap,
      o.topic,
      String(o.records),
      o.guarantee,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let done: { seenMs: number; seconds: number; rate: number } | null = null;
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      if (output.length > 100_000) output = output.slice(-50_000);
      const m = done ? null : DONE_LINE.exec(output);
      if (m) done = { seenMs: Date.now(), seconds: Number(m[1]), rate: Number(m[2]) };
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  let exitCode: number | null = null;
  const exited = child.status.then((s) => (exitCode = s.code));
  let applicationId: string | null = null;
  let peak = 0;
  let committedMs = 0;
  try {
    for (let polls = 0; committedMs === 0; polls++) {
      if (Date.now() - launched > o.timeoutMs) {
        throw new Error(`peer ${o.guarantee} did not commit everything within the timeout`);
      }
      if (exitCode !== null && (exitCode !== 0 || applicationId === null)) {
        throw new Error(`peer exited with ${exitCode}:\n${output.slice(-3000)}`);
      }
      if (exitCode === null && polls % 3 === 0) {
        peak = await memoryOf(child.pid).then((m) => Math.max(peak, m.peak), () => peak);
      }
      if (applicationId === null) {
        const groups = (await o.admin.listGroups()).groups.map((g) => g.groupId);
        applicationId = groups.find((g) => g.startsWith("peer-ohlcv-") && !before.has(g)) ??
          null;
        if (applicationId !== null) o.onApplicationId(applicationId);
      } else if (await committedLag(o.admin, applicationId, o.topic, o.ends) === 0) {
        committedMs = Date.now();
      }
      if (committedMs === 0) await sleep(100);
    }
    // It prints its line before the final commit; a moment more if the pipe lags.
    for (let i = 0; i < 50 && done === null; i++) await sleep(100);
    const line = done as { seenMs: number; seconds: number; rate: number } | null;
    if (line === null) throw new Error(`peer committed but printed no rate:\n${output}`);
    const firstMs = line.seenMs - line.seconds * 1000;
    const seconds = (committedMs - firstMs) / 1000;
    log(`  peer ${o.guarantee}: ${output.trim().split("\n").pop()}`);
    return {
      guarantee: o.guarantee,
      threads: o.threads,
      records: o.records,
      seconds,
      recordsPerSecond: o.records / seconds,
      selfReportedPerSecond: line.rate,
      secondsFromLaunch: (committedMs - launched) / 1000,
      peakRssBytes: peak,
      applicationId: applicationId!,
    };
  } finally {
    // It exits by itself after closing (state dir cleaned up); bound the wait.
    const timer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // already gone
      }
    }, 40_000);
    if (exitCode === null && committedMs === 0) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
    }
    await exited;
    clearTimeout(timer);
    await pumps;
  }
}

/** Deletes the peer's groups and changelog topics (and the sink topics the bench created). */
export async function cleanupPeer(
  admin: Admin,
  applicationIds: string[],
  createdTopics: string[],
): Promise<void> {
  if (applicationIds.length === 0 && createdTopics.length === 0) return;
  const topics = (await admin.listTopics()).filter((t) =>
    createdTopics.includes(t) || applicationIds.some((id) => t.startsWith(`${id}-`))
  );
  if (topics.length > 0) await admin.deleteTopics({ topics });
  if (applicationIds.length > 0) await admin.deleteGroups(applicationIds).catch(() => {});
}
