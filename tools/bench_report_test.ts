import assert from "node:assert/strict";
import { parseBenchArgs } from "./bench.ts";
import { evaluateTargets, type Figures } from "./bench_report.ts";

const MIB = 1024 * 1024;

function options() {
  const o = parseBenchArgs([]);
  if (o === "help") throw new Error("unexpected help");
  return o;
}

Deno.test("every target of issue 11 is listed, n/a when its scenario did not run", () => {
  const targets = evaluateTargets({ options: options(), errors: [] });
  assert.deepEqual(targets.map((t) => [t.value, t.met]), [
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
  };
  assert.deepEqual(evaluateTargets(f).map((t) => [t.value, t.met]), [
    ["2.00x", false], // against at-least-once (100k / 50,001), not exactly-once
    ["0.50x", true],
    ["not run", null],
    ["1025 MiB @ 100000", false],
    ["400 MiB @ 5000", true],
    ["1999.0 ms @ 10000", true],
  ]);
});
