/**
 * End to end through the real tools and stores: 10k mixed records from `deno task generate`
 * are normalized, and Silver topic, silver.* and DLQ counts add up to the input exactly.
 */
import assert from "node:assert/strict";
import { DlqRecord } from "../messages/dlq_record.ts";
import { sampleReferenceData } from "../tools/bronze_samples.ts";
import { seedReferenceData } from "../tools/generate.ts";
import {
  committedCount,
  expectedFor,
  openHarness,
  readTopic,
  silverCounts,
} from "./normalizer_support.ts";
import { freshEnv, pollUntil } from "./support.ts";

const REPO = new URL("../", import.meta.url).pathname;

Deno.test("10k mixed records: Silver topic, silver.* and DLQ add up to the input exactly", async () => {
  const testEnv = await freshEnv({ DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE: "500" });
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    const options = {
      count: 10_000,
      instruments: 12,
      curves: 4,
      seed: 4242,
      malformedRatio: 0.05,
      duplicateRatio: 0.03,
      startMs: Date.UTC(2027, 0, 1),
      stepMs: 37,
    };
    const expected = expectedFor(options);
    assert.ok(expected.uniqueTicks.size + expected.uniqueCurves.size < expected.ok); // has repeats
    assert.ok(Object.keys(expected.dlq).length === 3); // every normalize reason present

    const gen = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "generate",
        "--rate=0",
        `--count=${options.count}`,
        `--instruments=${options.instruments}`,
        `--curves=${options.curves}`,
        `--seed=${options.seed}`,
        `--malformed-ratio=${options.malformedRatio}`,
        `--duplicate-ratio=${options.duplicateRatio}`,
        `--start-time=${options.startMs}`,
        `--step-ms=${options.stepMs}`,
        "--seed-refdata",
      ],
      cwd: REPO,
      env: { ...Deno.env.toObject(), ...testEnv.env, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(gen.stdout).trim();
    assert.equal(gen.code, 0, new TextDecoder().decode(gen.stderr));
    const summary = JSON.parse(stdout.split("\n").at(-1)!);
    assert.equal(summary.produced, options.count);
    assert.equal(summary.expected_ok, expected.ok);
    assert.deepEqual(summary.expected_dlq, expected.dlq);

    // Seeding again is idempotent (upserts).
    await seedReferenceData(h.sql, sampleReferenceData(options));
    await h.startNormalizer();
    const groupId = `${testEnv.config.DATA_PROC_GROUP_ID}.normalizer`;
    await pollUntil("every Bronze record committed", async () => {
      const ticks = await committedCount(h.kafka, groupId, h.topics.bronzeTicks);
      const curves = await committedCount(h.kafka, groupId, h.topics.bronzeCurves);
      return ticks === expected.ticksIn && curves === expected.curvesIn ? true : undefined;
    }, { timeoutMs: 120_000 });

    const silverTicks = await readTopic(bootstrap, h.topics.normalizedTicks);
    const silverCurves = await readTopic(bootstrap, h.topics.normalizedCurves);
    const dlq = await readTopic(bootstrap, h.topics.dlq);
    // One Silver event or one DLQ record per input record: nothing lost, nothing extra.
    assert.equal(silverTicks.length + silverCurves.length, expected.ok);
    assert.equal(dlq.length, options.count - expected.ok);
    assert.equal(silverTicks.length + silverCurves.length + dlq.length, options.count);
    const byReason: Record<string, number> = {};
    for (const r of dlq) {
      const d = DlqRecord.parse(JSON.parse(r.payload!));
      byReason[d.reason] = (byReason[d.reason] ?? 0) + 1;
    }
    assert.deepEqual(byReason, expected.dlq);
    // silver.* holds each event once: repeats (deliberate duplicates) collapse by event_id.
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
