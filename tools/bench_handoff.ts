/**
 * Partition handoff in `deno task bench`: how long a partition holding ~10k instrument
 * actors is without an owner applying events when a second node joins the group.
 *
 * Node A owns both partitions of its own topic and has applied one event for each of
 * 2 x N instruments (N per partition, all live, committed); events keep arriving at a steady
 * rate; then node B starts and the group moves one partition to it. Measured:
 *  - revoke: the time stamp of A's log line "The group is rebalancing, re-joining" (kafkajs
 *    on A saw the rebalance that B's join started and gave up its assignment);
 *  - assigned: the time stamp of B's log line "partitions assigned";
 *  - claimed: the first poll of B's `GET /partitions` that lists the moved partition (B
 *    claimed its epoch and read its stored state);
 *  - first applied: the first poll (every 25 ms) of B's `GET /partitions` that shows the
 *    moved partition with `processed_offset >= 0`, i.e. B applied its first batch on it
 *    (the wall clock of the bench; same machine and clock as the nodes' log stamps).
 * Handoff = revoke -> first applied (an upper bound by up to one poll).
 */
import type { Admin, Producer } from "kafkajs";
import { sleep } from "../timing/sleep.ts";
import { produceAll, producePaced, type TickStream } from "./bench_events.ts";
import { type BenchNode, committedLag, log, spawnBenchNode, waitReady } from "./bench_support.ts";

const POLL_MS = 25;
const KEPT = /The group is rebalancing|partitions assigned/;

export interface HandoffResult {
  partitions: number;
  instruments: number;
  /** Events/s produced while B joined. */
  rate: number;
  movedPartition: number;
  /** Live instrument actors A held on the moved partition just before B started. */
  actorsOnMovedPartition: number;
  /** A's revoke log line -> B applied its first batch on the moved partition. */
  revokeToFirstAppliedMs: number;
  /** A's revoke -> B's "partitions assigned" (the group's rebalance). */
  revokeToAssignedMs: number | null;
  /** B's "partitions assigned" -> first applied (claim, stored state, fetch, revive, apply). */
  assignedToFirstAppliedMs: number | null;
  /** B's "partitions assigned" -> the partition shows in B's view (claimed, stored state read). */
  assignedToClaimedMs: number | null;
  /** B's process start -> A's revoke (Deno start-up and B's join; not part of the handoff). */
  startToRevokeMs: number;
  pollMs: number;
}

interface PartitionView {
  topic: string;
  partition: number;
  processed_offset: number;
  live_actors: number;
}

async function partitionViews(node: BenchNode, topic: string): Promise<PartitionView[]> {
  const res = await fetch(`${node.url}/partitions`);
  const body = await res.json() as { partitions?: PartitionView[] };
  return (body.partitions ?? []).filter((p) => p.topic === topic);
}

/** The `ts` (epoch ms) of the first kept line matching `pattern` seen at or after `fromMs`. */
function stampOf(node: BenchNode, pattern: RegExp, fromMs: number): number | null {
  for (const { line, seenMs } of node.keptLines()) {
    if (seenMs < fromMs || !pattern.test(line)) continue;
    try {
      const ts = Date.parse((JSON.parse(line) as { ts: string }).ts);
      if (Number.isFinite(ts)) return ts;
    } catch {
      // not a JSON line
    }
  }
  return null;
}

export async function runHandoff(o: {
  admin: Admin;
  producer: Producer;
  /** The node's environment: its own topic prefix, group, Redis prefix, 2 partitions. */
  env: Record<string, string>;
  nodeFlags: string[];
  topic: string;
  groupId: string;
  partitions: number;
  instruments: number;
  stream: TickStream;
  rate: number;
  timeoutMs: number;
  track: (node: BenchNode) => void;
}): Promise<HandoffResult> {
  log(`  pre-producing one event for each of ${o.instruments} instruments`);
  await produceAll(o.producer, o.topic, o.stream, o.instruments);
  const ends = new Map(
    (await o.admin.fetchTopicOffsets(o.topic)).map((p) => [p.partition, Number(p.high)]),
  );
  const env = {
    ...o.env,
    DATA_PROC_LOG_LEVEL: "info",
    DATA_PROC_MAX_LIVE_ACTORS: String(10 * o.instruments), // all stay live
    // One thread per node: the partition moves from node A to node B, not between threads.
    DATA_PROC_WORKERS: "1",
  };
  const a = spawnBenchNode(env, o.nodeFlags, { keepLines: KEPT });
  o.track(a);
  await waitReady(a, 60_000);
  const deadline = Date.now() + o.timeoutMs;
  while (await committedLag(o.admin, o.groupId, o.topic, ends) > 0) {
    if (Date.now() > deadline) throw new Error("node A did not commit the pre-produced events");
    if (a.exitCode() !== null) throw new Error(`node A exited:\n${a.log().slice(-3000)}`);
    await sleep(200);
  }
  const aViews = await partitionViews(a, o.topic);
  log(`  node A: ${aViews.map((p) => `p${p.partition} ${p.live_actors} actors`).join(", ")}`);

  const stop = new AbortController();
  const producing = producePaced(
    o.producer,
    o.topic,
    o.stream,
    Number.MAX_SAFE_INTEGER,
    o.rate,
    stop.signal,
  );
  try {
    await sleep(2000); // A is applying live traffic when B joins
    const bStart = Date.now();
    const b = spawnBenchNode(env, o.nodeFlags, { keepLines: KEPT });
    o.track(b);
    const firstApplied = new Map<number, number>();
    const claimed = new Map<number, number>();
    let moved: PartitionView[] = [];
    while (moved.length === 0 || firstApplied.size < moved.length) {
      if (Date.now() > deadline) {
        throw new Error(
          `no handoff: node B owns ${moved.map((p) => p.partition)}, applied on ${[
            ...firstApplied.keys(),
          ]}`,
        );
      }
      if (b.exitCode() !== null) throw new Error(`node B exited:\n${b.log().slice(-3000)}`);
      try {
        moved = await partitionViews(b, o.topic);
        const now = Date.now();
        for (const p of moved) {
          if (!claimed.has(p.partition)) claimed.set(p.partition, now);
          if (p.processed_offset >= 0 && !firstApplied.has(p.partition)) {
            firstApplied.set(p.partition, now);
          }
        }
      } catch {
        // B is not listening yet
      }
      await sleep(POLL_MS);
    }
    const revoke = stampOf(a, /The group is rebalancing/, bStart);
    if (revoke === null) throw new Error(`no revoke line in node A's log after B started`);
    const assigned = stampOf(b, /partitions assigned/, bStart);
    const [partition, applied] = [...firstApplied.entries()].sort((x, y) => x[1] - y[1])[0]!;
    return {
      partitions: o.partitions,
      instruments: o.instruments,
      rate: o.rate,
      movedPartition: partition,
      actorsOnMovedPartition: aViews.find((p) => p.partition === partition)?.live_actors ?? 0,
      revokeToFirstAppliedMs: applied - revoke,
      revokeToAssignedMs: assigned === null ? null : assigned - revoke,
      assignedToFirstAppliedMs: assigned === null ? null : applied - assigned,
      assignedToClaimedMs: assigned === null ? null : claimed.get(partition)! - assigned,
      startToRevokeMs: revoke - bStart,
      pollMs: POLL_MS,
    };
  } finally {
    stop.abort();
    await producing.catch(() => {});
  }
}
