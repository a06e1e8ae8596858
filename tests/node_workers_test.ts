/**
 * A node with worker threads (DATA_PROC_WORKERS=2): both threads own partitions, the node's
 * one HTTP surface answers for the worker's actors and reports every thread's metrics, and
 * a SIGKILL of the process mid-stream followed by a restart leaves the results exact; a
 * SIGTERM drains both threads.
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
const INSTRUMENTS = 200;

interface ClusterView {
  nodes: { node_id: string; partitions: { topic: string; partition: number }[] }[];
}

interface ListedActor {
  key: string;
  owner: string | null;
  status: string;
}

/** The worker's node id once both threads of `node` own instrument partitions. */
async function workerOwningPartitions(node: NodeProcess, ticksTopic: string): Promise<string> {
  return await pollUntil("the main thread and the worker both own partitions", async () => {
    const view = await (await fetch(`${node.url}/partitions`)).json() as ClusterView;
    const owning = view.nodes.filter((n) => n.partitions.some((p) => p.topic === ticksTopic));
    const worker = owning.find((n) => n.node_id.endsWith("-w1"));
    return owning.length === 2 && worker ? worker.node_id : undefined;
  });
}

function metricValue(exposition: string, series: string): number | undefined {
  const line = exposition.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

Deno.test({
  name:
    "a node with a worker thread shares the partitions, answers for both, and stays exact through SIGKILL",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      DATA_PROC_NORMALIZED_PARTITIONS: "6",
      DATA_PROC_ALLOWED_LATENESS_MS: "5000",
      DATA_PROC_WORKERS: "2",
    });
    await createTopics(env);
    const ticksTopic = `${env.env.DATA_PROC_TOPIC_PREFIX}normalized.market.ticks.v1`;
    const input = generateTicks({
      seed: 23,
      instruments: INSTRUMENTS,
      count: 30_000,
      startMs: Date.UTC(2026, 10, 21, 9, 0, 0),
      spreadMs: 2 * 3_600_000,
      outOfOrderRatio: 0.05,
      duplicateRatio: 0.02,
      maxDelayMs: 20_000,
    });
    const expected = expectedInstruments(input, {
      windows: WINDOWS,
      allowedLatenessMs: 5000,
      watermarksAt: watermarksAt(0, 15_000, 30_000),
    });
    const nodes: NodeProcess[] = [];
    try {
      const first = await spawnNode(env.env);
      nodes.push(first);
      await waitReady(first);
      const worker = await workerOwningPartitions(first, ticksTopic);
      await produceTicks(env, input.slice(0, 15_000));

      // Every instrument is live in exactly one thread; /metrics adds the worker's.
      await pollUntil("every instrument live, counted once over both threads", async () => {
        const text = await (await fetch(`${first.url}/metrics`)).text();
        const live = metricValue(text, 'data_processing_live_actors{kind="instrument"}');
        return live === INSTRUMENTS ? true : undefined;
      });

      // The node's HTTP answers for an actor the worker owns (forwarded to it). The list
      // shows the worker's actors once their snapshots are stored.
      const theirs = await pollUntil(`an actor owned by ${worker} listed`, async () => {
        const listed = await (await fetch(`${first.url}/actors?kind=instrument&limit=1000`))
          .json() as { actors: ListedActor[] };
        return listed.actors.find((a) => a.owner === worker);
      });
      const res = await fetch(`${first.url}/actors/instrument/${theirs.key}`);
      strictEqual(res.status, 200);
      const view = await res.json() as { owner: string; key: string };
      strictEqual(view.owner, worker);
      strictEqual(view.key, theirs.key);

      // The whole process dies mid-stream: both threads' uncommitted work is redone.
      await first.kill("SIGKILL");
      await produceTicks(env, input.slice(15_000));
      const second = await spawnNode(env.env);
      nodes.push(second);
      await waitReady(second);
      await waitExact(env, expected, second);
      strictEqual(await conflictingVersions(env), 0);
      // SIGTERM drains both threads and the process exits cleanly.
      strictEqual(await second.kill("SIGTERM"), 0);
    } finally {
      for (const n of nodes) await n.kill("SIGKILL");
      await env.cleanup();
    }
  },
});
