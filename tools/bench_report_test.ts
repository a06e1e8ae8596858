import assert from "node:assert/strict";
import { parseBenchArgs } from "./bench.ts";
import {
  bracketedBaseline,
  evaluateTargets,
  type Figures,
  type LatencyResult,
} from "./bench_report.ts";
import type { ReplayResult } from "./bench_replay.ts";

const MIB = 1024 * 1024;

function options() {
  const o = parseBenchArgs([]);
  if (o === "help") throw new Error("unexpected help");
  return o;
}

function latency(p99Ms: number): LatencyResult {
  return {
    targetRate: 5000,
    achievedRate: 5000,
    seconds: 30,
    observations: 150_000,
    p50Ms: p99Ms / 4,
    p99Ms,
    meanMs: p99Ms / 3,
    peakRssBytes: 300 * MIB,
    maxProducerGapMs: 25,
    producerAckP50Ms: 3,
    producerAckP99Ms: 9,
    flushes: 30,
    flushP50Ms: 20,
    flushP99Ms: 60,
    nodeCpuMicrosPerEvent: 40,
    producerCpuMicrosPerEvent: 20,
    nodeCores: 0.2,
    producerCores: 0.1,
  };
}

function replayResult(
  o: { p99Without: number; p99With: number; rebalances: number; bars?: number },
): ReplayResult {
  return {
    keys: 100,
    barsPerKey: o.bars ?? 10_000,
    historyEvents: 100 * (o.bars ?? 10_000),
    historyCommitSeconds: 20,
    liveInstruments: 5000,
    rate: 5000,
    replayMaxRecordsPerS: 0,
    without: latency(o.p99Without),
    with: latency(o.p99With),
    after: latency(o.p99Without),
    jobStatus: "done",
    replaySeconds: 25,
    jobEvents: 1_000_000,
    jobKeys: 100,
    progress: [
      { atMs: 300, percent: 0 },
      { atMs: 600, percent: 10.5 },
      { atMs: 5000, percent: 50 },
      { atMs: 25_000, percent: 100 },
    ],
    distinctProgressValues: 4,
    postAnswerMs: 20,
    longestPollAnswerMs: 300,
    rebalances: o.rebalances,
    p99Ratio: o.p99With / o.p99Without,
    pollMs: 250,
    timeline: { without: [], with: [], after: [] },
  };
}

Deno.test("every target of issues 11 and 10 is listed, n/a when its scenario did not run", () => {
  const targets = evaluateTargets({ options: options(), errors: [] });
  assert.deepEqual(targets.map((t) => [t.value, t.met]), [
    ["not run", null],
    ["not run", null],
    ["not run", null],
    ["not run", null],
    ["not run", null],
    ["not run", null],
    ["not run", null],
  ]);
});

Deno.test("targets are judged from the figures of the same run", () => {
  const f: Figures = {
    options: options(),
    errors: [],
    baseline: { events: 1e6, seconds: 5, eventsPerSecond: 200_000 },
    throughput: {
      events: 1e6,
      secondsToApplied: 9,
      secondsToCommitted: 10,
      appliedPerSecond: 110_000,
      committedPerSecond: 100_000,
      startupSeconds: 1,
      peakRssBytes: 400 * MIB,
      liveActors: 5000,
      cpuMicrosPerEvent: 17,
    },
    peer: [
      {
        guarantee: "exactly_once_v2",
        threads: 2,
        records: 1e6,
        seconds: 40,
        recordsPerSecond: 25_000,
        selfReportedPerSecond: 26_000,
        secondsFromLaunch: 45,
        peakRssBytes: 600 * MIB,
        applicationId: "peer-ohlcv-b",
      },
      {
        guarantee: "at_least_once",
        threads: 2,
        records: 1e6,
        seconds: 20,
        recordsPerSecond: 50_001,
        selfReportedPerSecond: 60_000,
        secondsFromLaunch: 25,
        peakRssBytes: 500 * MIB,
        applicationId: "peer-ohlcv-a",
      },
    ],
    memory: {
      rate: 20_000,
      instruments: 100_000,
      events: 200_000,
      maxLiveSetting: 20_000,
      seconds: 10,
      peakRssBytes: 1025 * MIB,
      maxLiveActorsSeen: 21_000,
      liveActorsAtEnd: 20_000,
      passivations: 80_000,
      heapBytesPerActor: 4000,
      rssBytesPerActor: 8000,
      heapAtReadyBytes: 50 * MIB,
      heapAtEndBytes: 130 * MIB,
    },
    handoff: {
      partitions: 2,
      instruments: 20_000,
      rate: 2000,
      movedPartition: 1,
      actorsOnMovedPartition: 10_000,
      revokeToFirstAppliedMs: 1999,
      revokeToAssignedMs: 100,
      assignedToFirstAppliedMs: 1899,
      assignedToClaimedMs: 50,
      startToRevokeMs: 900,
      pollMs: 25,
    },
    replay: replayResult({ p99Without: 40, p99With: 80, rebalances: 0 }),
  };
  assert.deepEqual(evaluateTargets(f).map((t) => [t.value, t.met]), [
    ["2.00x", false], // against at-least-once (100k / 50,001), not exactly-once
    ["0.50x", true],
    ["not run", null],
    ["1025 MiB @ 100000", false],
    ["400 MiB @ 5000", true],
    ["1999.0 ms @ 10000", true],
    ["2.00x, 0 rebalances @ 100x10000", true],
  ]);
});

Deno.test("the replay target needs both the p99 ratio and no rebalance, and the full size", () => {
  const replayTarget = (replay: ReplayResult) =>
    evaluateTargets({ options: options(), errors: [], replay }).at(-1);
  assert.equal(
    replayTarget(replayResult({ p99Without: 40, p99With: 81, rebalances: 0 }))?.met,
    false,
  );
  assert.equal(
    replayTarget(replayResult({ p99Without: 40, p99With: 60, rebalances: 1 }))?.met,
    false,
  );
  assert.equal(
    replayTarget(replayResult({ p99Without: 40, p99With: 60, rebalances: 0, bars: 1000 }))?.met,
    null, // --quick: 1000 bars per key is not the size
  );
});

Deno.test("the p99 target is judged only at half the max measured in the same run", () => {
  const p99Target = (
    rate: number,
    p99Ms: number,
    appliedPerSecond?: number,
    achieved?: number,
  ) =>
    evaluateTargets({
      options: options(),
      errors: [],
      ...(appliedPerSecond === undefined ? {} : {
        throughput: {
          events: 1e6,
          secondsToApplied: 9,
          secondsToCommitted: 10,
          appliedPerSecond,
          committedPerSecond: appliedPerSecond,
          startupSeconds: 1,
          peakRssBytes: 400 * MIB,
          liveActors: 5000,
          cpuMicrosPerEvent: 17,
        },
      }),
      latency: { ...latency(p99Ms), targetRate: rate, achievedRate: achieved ?? rate },
    }).find((t) => t.target.startsWith("p99"))!;
  const atHalf = p99Target(50_000, 80, 100_000);
  assert.deepEqual([atHalf.value, atHalf.met], ["80.0 ms @ 50,000/s", true]);
  const slow = p99Target(50_000, 120, 100_000);
  assert.deepEqual([slow.value, slow.met], ["120.0 ms @ 50,000/s", false]);
  // --rate below half the max, or no max measured: shown, not judged.
  const below = p99Target(20_000, 40, 100_000);
  assert.deepEqual([below.value, below.met], ["40.0 ms @ 20,000/s (half max 50,000/s)", null]);
  const noMax = p99Target(20_000, 40);
  assert.deepEqual([noMax.value, noMax.met], ["40.0 ms @ 20,000/s (max not measured)", null]);
  // The producer fell short of the rate: a p99 over the line fails, one under it is not judged.
  const shortSlow = p99Target(50_000, 120, 100_000, 40_000);
  assert.deepEqual(
    [shortSlow.value, shortSlow.met],
    ["120.0 ms @ 40,000/s of 50,000/s asked", false],
  );
  const shortFast = p99Target(50_000, 80, 100_000, 40_000);
  assert.deepEqual([shortFast.value, shortFast.met], [
    "80.0 ms @ 40,000/s of 50,000/s asked",
    null,
  ]);
});

Deno.test("the plain consumer's rate is the mean of its runs before and after the node", () => {
  const before = { events: 1e6, seconds: 4, eventsPerSecond: 250_000 };
  const after = { events: 1e6, seconds: 5, eventsPerSecond: 200_000 };
  const baseline = bracketedBaseline(before, after);
  assert.strictEqual(baseline.eventsPerSecond, 225_000);
  assert.deepStrictEqual(baseline.runs, [250_000, 200_000]);
  const targets = evaluateTargets({
    options: options(),
    errors: [],
    baseline,
    throughput: {
      events: 1e6,
      secondsToApplied: 8,
      secondsToCommitted: 8.8,
      appliedPerSecond: 125_000,
      committedPerSecond: 113_000,
      startupSeconds: 1,
      peakRssBytes: 400 * MIB,
      liveActors: 5000,
      cpuMicrosPerEvent: 17,
    },
  });
  const plain = targets.find((t) => t.target.includes("plain kafkajs"))!;
  assert.deepStrictEqual([plain.value, plain.met], ["0.50x", true]);
});

Deno.test("the 5k-instrument RSS is the node's peak through every latency run", () => {
  const rss = (f: Partial<Figures>) =>
    evaluateTargets({ options: options(), errors: [], ...f })
      .find((t) => t.target.startsWith("<= 512 MiB"))!;
  const half = { ...latency(80), peakRssBytes: 500 * MIB };
  assert.deepEqual([rss({ latency: half }).value, rss({ latency: half }).met], [
    "500 MiB @ 5000",
    true,
  ]);
  // The quarter-max run comes last: its peak (VmHWM only grows) is the node's.
  const withQuarter = rss({
    latency: half,
    latencyQuarterMax: { ...latency(40), peakRssBytes: 520 * MIB },
  });
  assert.deepEqual([withQuarter.value, withQuarter.met], ["520 MiB @ 5000", false]);
});
