/**
 * Nodes joining, leaving and crashing mid-stream: partitions and their actors move, and the
 * results stay exact (independent oracle), with no conflicting versions in gold.bars.
 */
import { strictEqual } from "node:assert/strict";
import { expectedInstruments, generateTicks } from "./expected.ts";
import {
  conflictingVersions,
  createTopics,
  produceTicks,
  waitExact,
  watermarksAt,
} from "./actor_harness.ts";
import { type NodeProcess, spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil } from "./support.ts";

const WINDOWS = [{ name: "1m", ms: 60_000 }, { name: "1h", ms: 3_600_000 }];

async function owned(node: NodeProcess): Promise<number> {
  const body = await (await fetch(`${node.url}/partitions`)).json();
  return body.partitions.length;
}

Deno.test({
  name: "a node joining then leaving (SIGTERM) and another killed mid-stream leave results exact",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      DATA_PROC_NORMALIZED_PARTITIONS: "6",
      DATA_PROC_ALLOWED_LATENESS_MS: "5000",
    });
    await createTopics(env);
    const input = generateTicks({
      seed: 11,
      instruments: 300,
      count: 60_000,
      startMs: Date.UTC(2026, 10, 20, 9, 0, 0),
      spreadMs: 2 * 3_600_000,
      outOfOrderRatio: 0.05,
      duplicateRatio: 0.02,
      maxDelayMs: 20_000,
    });
    const expected = expectedInstruments(input, {
      windows: WINDOWS,
      allowedLatenessMs: 5000,
      watermarksAt: watermarksAt(0, 20_000, 35_000, 45_000, 60_000),
    });
    const nodes: NodeProcess[] = [];
    try {
      const a = await spawnNode(env.env);
      nodes.push(a);
      await waitReady(a);
      await produceTicks(env, input.slice(0, 20_000));

      const b = await spawnNode(env.env);
      nodes.push(b);
      await waitReady(b);
      await pollUntil("b owns partitions", async () => (await owned(b)) > 0 ? true : undefined);
      await produceTicks(env, input.slice(20_000, 35_000));

      const c = await spawnNode(env.env);
      nodes.push(c);
      await waitReady(c);
      await pollUntil("c owns partitions", async () => (await owned(c)) > 0 ? true : undefined);
      await produceTicks(env, input.slice(35_000, 45_000));

      strictEqual(await b.kill("SIGTERM"), 0);
      await c.kill("SIGKILL");
      await produceTicks(env, input.slice(45_000));

      await waitExact(env, expected, a);
      strictEqual(await conflictingVersions(env), 0);
    } finally {
      for (const n of nodes) await n.kill("SIGKILL");
      await env.cleanup();
    }
  },
});
