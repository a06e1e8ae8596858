/**
 * A normalizer process killed with SIGKILL mid-stream loses nothing and doubles nothing in
 * silver.* after a restart: a real `deno run -A main.ts` node (actors off), real stores.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { DlqRecord } from "../messages/dlq_record.ts";
import { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { queryRows } from "../stores/clickhouse.ts";
import { bronzeSamples, sampleReferenceData } from "../tools/bronze_samples.ts";
import { seedReferenceData } from "../tools/generate.ts";
import {
  committedCount,
  expectedFor,
  openHarness,
  readTopic,
  silverCounts,
} from "./normalizer_support.ts";
import { freshEnv, pollUntil } from "./support.ts";
import { startTaskEnv, startTaskV8Flags } from "../tools/start_flags.ts";

const REPO = new URL("../", import.meta.url).pathname;

/** Spawns a node; its stderr is drained so the pipe never blocks it. */
function spawnNode(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...startTaskV8Flags(), "main.ts"],
    cwd: REPO,
    env: { ...Deno.env.toObject(), ...env, ...startTaskEnv(), NO_COLOR: "1" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const tail: string[] = [];
  const drained = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      tail.push(decoder.decode(chunk, { stream: true }));
      if (tail.length > 200) tail.shift();
    }
  })();
  return {
    child,
    logs: () => tail.join(""),
    /** Waits for exit and for stderr to close. */
    exited: async () => {
      const status = await child.status;
      await drained;
      return status;
    },
  };
}

Deno.test("normalizer killed with SIGKILL mid-batch loses nothing and doubles nothing after restart", async () => {
  const testEnv = await freshEnv({
    DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE: "50", // many commits: the kill lands between them
    DATA_PROC_ACTORS_ENABLED: "false",
  });
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    const options = {
      count: 20_000,
      instruments: 9,
      curves: 3,
      seed: 99,
      malformedRatio: 0.03,
      duplicateRatio: 0.02,
      startMs: Date.UTC(2027, 5, 1),
      stepMs: 11,
    };
    const expected = expectedFor(options);
    await seedReferenceData(h.sql, sampleReferenceData(options));
    const samples = [...bronzeSamples(options)];
    for (let i = 0; i < samples.length; i += 2000) {
      const slice = samples.slice(i, i + 2000);
      const msg = (kind: string) =>
        slice.filter((s) => s.kind === kind).map((s) => ({
          key: s.key,
          value: Buffer.from(s.value),
        }));
      await h.producer.sendBatch({
        acks: -1,
        topicMessages: [
          { topic: h.topics.bronzeTicks, messages: msg("tick") },
          { topic: h.topics.bronzeCurves, messages: msg("curve") },
        ],
      });
    }

    const groupId = `${testEnv.config.DATA_PROC_GROUP_ID}.normalizer`;
    const committed = async () =>
      (await committedCount(h.kafka, groupId, h.topics.bronzeTicks)) +
      (await committedCount(h.kafka, groupId, h.topics.bronzeCurves));

    const first = spawnNode(testEnv.env);
    let atKill: number;
    try {
      atKill = await pollUntil("the first commits", async () => {
        const n = await committed();
        return n > 0 ? n : undefined;
      }, { intervalMs: 20 });
    } finally {
      first.child.kill("SIGKILL");
    }
    const status = await first.exited();
    assert.equal(status.signal, "SIGKILL", first.logs());
    const afterKill = await committed();
    assert.ok(afterKill < options.count, `killed too late: ${afterKill} of ${options.count}`);
    // Some outputs beyond the last commit were usually written: they are redelivered.
    const [written] = await queryRows<{ n: string }>(
      h.ch,
      `SELECT count() AS n FROM ${h.silverDb}.ticks`,
    );
    console.log(`killed at ${atKill}..${afterKill} committed, ${written?.n} silver tick rows`);

    const second = spawnNode(testEnv.env);
    try {
      await pollUntil("every Bronze record committed after the restart", async () => {
        const n = await committed();
        return n === options.count ? n : undefined;
      }, { timeoutMs: 120_000 });
    } finally {
      second.child.kill("SIGTERM");
      await second.exited();
    }

    // Nothing lost: every valid event_id reached the Silver topics, every bad record the DLQ.
    const ticks = (await readTopic(bootstrap, h.topics.normalizedTicks)).map((r) =>
      NormalizedTick.parse(JSON.parse(r.payload!)).event_id
    );
    const curves = (await readTopic(bootstrap, h.topics.normalizedCurves)).map((r) =>
      NormalizedCurvePoint.parse(JSON.parse(r.payload!)).event_id
    );
    assert.deepEqual(new Set(ticks), expected.uniqueTicks);
    assert.deepEqual(new Set(curves), expected.uniqueCurves);
    assert.ok(ticks.length + curves.length >= expected.ok);
    const dlqSources = new Set(
      (await readTopic(bootstrap, h.topics.dlq)).map((r) => {
        const d = DlqRecord.parse(JSON.parse(r.payload!));
        return `${d.source_topic}/${d.source_partition}/${d.source_offset}`;
      }),
    );
    assert.equal(dlqSources.size, options.count - expected.ok);
    // Nothing doubled: one silver row per event_id.
    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "ticks"), {
      rows: expected.uniqueTicks.size,
      distinct: expected.uniqueTicks.size,
    });
    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "curve_points"), {
      rows: expected.uniqueCurves.size,
      distinct: expected.uniqueCurves.size,
    });
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});
