/**
 * The actor stage end to end on the real stack: normalized ticks in Kafka -> node process
 * -> Redis projections and gold.bars, compared with the independent oracle after a clean
 * run, a kill -9, a redelivery of the whole input, and with passivation under a small cap.
 */
import { strictEqual as assertEquals } from "node:assert/strict";
import { expectedInstruments, generateTicks } from "./expected.ts";
import {
  committedToEnd,
  conflictingVersions,
  createTopics,
  instrumentDifferences,
  produceTicks,
  waitExact,
  watermarksAt,
} from "./actor_harness.ts";
import { spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil } from "./support.ts";

const WINDOWS = [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }];
const LATENESS_MS = 5000;

async function setup(overrides: Record<string, string> = {}) {
  const env = await freshEnv({
    DATA_PROC_NORMALIZER_ENABLED: "false",
    DATA_PROC_ALLOWED_LATENESS_MS: String(LATENESS_MS),
    DATA_PROC_BAR_WINDOWS: "1m,1h",
    ...overrides,
  });
  await createTopics(env);
  return env;
}

function ticks(count: number, instruments: number, seed: number) {
  return generateTicks({
    seed,
    instruments,
    count,
    startMs: Date.UTC(2026, 10, 20, 9, 0, 0),
    spreadMs: 3 * 3_600_000,
    outOfOrderRatio: 0.05,
    duplicateRatio: 0.02,
    maxDelayMs: 20_000,
  });
}

Deno.test({
  name: "a clean run of 50k events over 500 instruments leaves every projection and gold bar exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await setup();
    const input = ticks(50_000, 500, 1);
    const expected = expectedInstruments(input, {
      windows: WINDOWS,
      allowedLatenessMs: LATENESS_MS,
      watermarksAt: watermarksAt(0, 50_000),
    });
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await produceTicks(env, input);
      await waitExact(env, expected, node);
      assertEquals(await conflictingVersions(env), 0);
      assertEquals(await node.kill("SIGTERM"), 0);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name:
    "kill -9 of the node mid-stream, then a restart, still gives exact results with no duplicate versions",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await setup();
    const input = ticks(50_000, 500, 2);
    const expected = expectedInstruments(input, {
      windows: WINDOWS,
      allowedLatenessMs: LATENESS_MS,
      watermarksAt: watermarksAt(0, 30_000, 50_000),
    });
    let node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await produceTicks(env, input.slice(0, 30_000));
      // Kill once some flushes have landed, so the restart resumes mid-stream.
      await pollUntil("first flushed projections", async () => {
        const diffs = await instrumentDifferences(env, expected);
        return diffs.length < expected.latest.size + expected.bars.size ? true : undefined;
      }, { timeoutMs: 60_000, intervalMs: 300 });
      await node.kill("SIGKILL");
      const producing = produceTicks(env, input.slice(30_000));
      node = await spawnNode(env.env);
      await producing;
      await waitReady(node);
      await waitExact(env, expected);
      assertEquals(await conflictingVersions(env), 0);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name:
    "a node that drains a backlog commits it once caught up; live events wait for the periodic snapshot",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    // Snapshots (and so commits) every 10 min: the earliest periodic one of the 3 partitions
    // comes after ~229 s, far past every deadline here.
    const env = await setup({ DATA_PROC_SNAPSHOT_INTERVAL_MS: "600000" });
    const input = ticks(20_000, 200, 5);
    const backlog = input.slice(0, 15_000);
    // Written 20 minutes ago, while no node ran: a whole interval behind.
    await produceTicks(env, backlog, { appendedAtMs: Date.now() - 1_200_000 });
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await pollUntil(
        "the backlog committed",
        async () => (await committedToEnd(env)) ? true : undefined,
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      // Live events (a second behind at most) are flushed but not committed early.
      await produceTicks(env, input.slice(15_000));
      const expected = expectedInstruments(input, {
        windows: WINDOWS,
        allowedLatenessMs: LATENESS_MS,
        watermarksAt: watermarksAt(0, 15_000, 20_000),
      });
      await waitExact(env, expected, node);
      assertEquals(await committedToEnd(env), false);
      assertEquals(await node.kill("SIGTERM"), 0);
      assertEquals(await committedToEnd(env), true);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "the same events delivered twice leave the results exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await setup();
    const input = ticks(20_000, 200, 3);
    const expected = expectedInstruments(input, {
      windows: WINDOWS,
      allowedLatenessMs: LATENESS_MS,
      watermarksAt: watermarksAt(0, 20_000),
    });
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await produceTicks(env, input);
      await waitExact(env, expected);
      const twice = expectedInstruments([...input, ...input], {
        windows: WINDOWS,
        allowedLatenessMs: LATENESS_MS,
        watermarksAt: watermarksAt(0, 20_000, 40_000),
      });
      await produceTicks(env, input);
      await waitExact(env, twice);
      assertEquals(await conflictingVersions(env), 0);
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "with a cap of 100 live actors and 1,000 instruments the results stay exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await setup({
      DATA_PROC_MAX_LIVE_ACTORS: "100",
      DATA_PROC_ACTOR_IDLE_PASSIVATE_MS: "500",
    });
    const input = ticks(20_000, 1000, 4);
    const expected = expectedInstruments(input, {
      windows: WINDOWS,
      allowedLatenessMs: LATENESS_MS,
      watermarksAt: watermarksAt(0, 20_000),
    });
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      await produceTicks(env, input);
      await waitExact(env, expected);
      const metrics = await (await fetch(`${node.url}/metrics`)).text();
      const passivated = /data_processing_actor_passivations_total\{kind="instrument"\} (\d+)/.exec(
        metrics,
      );
      if (!passivated || Number(passivated[1]) === 0) throw new Error("no actor was passivated");
      const live = /data_processing_live_actors\{kind="instrument"\} (\d+)/.exec(metrics);
      if (!live || Number(live[1]) > 100) {
        throw new Error(`live actors above the cap: ${live?.[1]}`);
      }
    } finally {
      await node.kill("SIGKILL");
      await env.cleanup();
    }
  },
});
