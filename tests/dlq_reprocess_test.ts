/** `deno task dlq:reprocess` as a real subprocess against the real stack. */
import assert from "node:assert/strict";
import type { Kafka } from "kafkajs";
import { buildDlqRecord, DlqRecord } from "../messages/dlq_record.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { queryRows } from "../stores/clickhouse.ts";
import { sendChunked } from "../stores/kafka.ts";
import { NORMALIZE_STAGE } from "../supervisors/normalization_pipeline.ts";
import {
  json,
  openHarness,
  produceRaw,
  readTopic,
  readTopicUntil,
  upsertInstrument,
} from "./normalizer_support.ts";
import { freshEnv, pollUntil } from "./support.ts";

const REPO = new URL("../", import.meta.url).pathname;

/** Runs the tool; a run still going after `timeoutMs` is killed (and fails the test). */
async function runReprocess(env: Record<string, string>, args: string[], timeoutMs = 120_000) {
  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(), timeoutMs);
  const started = Date.now();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["task", "dlq:reprocess", ...args],
      cwd: REPO,
      env: { ...env, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
      signal: deadline.signal,
    }).output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.ok(!deadline.signal.aborted, `dlq:reprocess still running after ${timeoutMs} ms`);
    return { code: out.code, stdout, stderr, elapsedMs: Date.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

/** Sum of the high watermarks of a topic's partitions (= records, none being deleted). */
async function topicRecordCount(kafka: Kafka, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const offsets = await admin.fetchTopicOffsets(topic);
    return offsets.reduce((sum, p) => sum + Number(p.high), 0);
  } finally {
    await admin.disconnect();
  }
}

Deno.test("dlq:reprocess brings an unmapped symbol into Silver once its mapping exists", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: "power.de" });
    await h.startNormalizer();
    const base = { source: "eex", ts: "2027-03-01T12:00:00+01:00", price: "-7.25", size: 3 };
    // Same key: one Bronze partition, hence one DLQ partition, in offset order.
    await produceRaw(h.producer, h.topics.bronzeTicks, [
      { key: "same", value: json({ ...base, event_id: "late-map", symbol: "DENEW" }) },
      { key: "same", value: json({ ...base, event_id: "bad", symbol: "DEBY", size: -1 }) },
      { key: "same", value: json({ ...base, event_id: "fine", symbol: "DEBY" }) },
    ]);
    const dlq = await readTopicUntil(bootstrap, h.topics.dlq, 2, pollUntil);
    const reasons = dlq.map((r) => DlqRecord.parse(JSON.parse(r.payload!)).reason).sort();
    assert.deepEqual(reasons, ["invalid_payload", "unknown_instrument"]);
    const partition = dlq[0]!.partition;
    assert.ok(dlq.every((r) => r.partition === partition));
    const [start, end] = [dlq[0]!.offset, dlq[1]!.offset].sort((a, b) => a - b);

    await upsertInstrument(h.sql, {
      source: "eex",
      symbol: "DENEW",
      instrument_id: "power.de.new",
      price_multiplier: "2",
    });
    const env = { ...Deno.env.toObject(), ...testEnv.env };
    const range = ["--partition", String(partition), "--start-offset", String(start)];
    const filtered = await runReprocess(env, [
      ...range,
      "--end-offset",
      String(end! + 100), // clamped to the partition's end
      "--reason",
      "unknown_instrument",
      "--actor",
      "test-operator",
    ]);
    assert.equal(filtered.code, 0, filtered.stderr);
    const summary = JSON.parse(filtered.stdout.split("\n").at(-1)!);
    assert.equal(summary.read, 2);
    assert.equal(summary.reprocessed_ok, 1);
    assert.equal(summary.failed_again, 0);
    assert.equal(summary.skipped_by_filter, 1);
    assert.equal(summary.end_offset, String(end));

    // The record flows as if it had just arrived: Silver topic and silver.ticks.
    const silver = await readTopicUntil(bootstrap, h.topics.normalizedTicks, 2, pollUntil);
    const revived = silver.map((r) => ({
      key: r.key,
      e: NormalizedTick.parse(JSON.parse(r.payload!)),
    }))
      .find((t) => t.e.event_id === "late-map");
    assert.equal(revived?.key, "power.de.new");
    assert.equal(revived?.e.price, -14.5);
    const [row] = await queryRows<{ instrument_id: string; price: number }>(
      h.ch,
      `SELECT instrument_id, price FROM ${h.silverDb}.ticks FINAL WHERE event_id = 'late-map'`,
    );
    assert.deepEqual(row, { instrument_id: "power.de.new", price: -14.5 });

    // Without the filter, the still-invalid record goes to the DLQ again, same source.
    const all = await runReprocess(env, [...range, "--end-offset", String(end)]);
    assert.equal(all.code, 0, all.stderr);
    const again = JSON.parse(all.stdout.split("\n").at(-1)!);
    assert.equal(again.failed_again, 1);
    assert.equal(again.reprocessed_ok, 1);
    const after = (await readTopic(bootstrap, h.topics.dlq)).map((r) =>
      DlqRecord.parse(JSON.parse(r.payload!))
    );
    assert.equal(after.length, 3);
    const first = after.find((d) => d.reason === "invalid_payload")!;
    const repeat = after.at(-1)!;
    assert.equal(repeat.reason, "invalid_payload");
    assert.equal(repeat.source_offset, first.source_offset);
    assert.equal(repeat.value_b64, first.value_b64);

    const audit = await h.sql<{ actor: string; outcome: string; details: { read: number } }[]>`
      SELECT actor, outcome, details FROM audit_log WHERE action = 'dlq.reprocess' ORDER BY id`;
    assert.equal(audit.length, 2);
    assert.equal(audit[0]!.actor, "test-operator");
    assert.equal(audit[0]!.outcome, "ok");
    assert.equal(audit[0]!.details.read, 2);
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("dlq:reprocess refuses bad arguments with a clear message", async () => {
  const env = Deno.env.toObject();
  const missing = await runReprocess(env, ["--start-offset", "0", "--end-offset", "1"]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /--partition is required/);
  const reversed = await runReprocess(env, [
    "--partition",
    "0",
    "--start-offset",
    "9",
    "--end-offset",
    "1",
  ]);
  assert.equal(reversed.code, 2);
  assert.match(reversed.stderr, /--end-offset \(1\) must be >= --start-offset \(9\)/);
  const unknown = await runReprocess(env, ["--bogus"]);
  assert.equal(unknown.code, 2);
});

Deno.test("dlq:reprocess reads a range of many fetches once each and ends with exact counts", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    // 20,000 envelopes as the normalizer writes them for an unmapped symbol: all keyed by the
    // same Bronze partition, hence in one DLQ partition, in offset order.
    const count = 20_000;
    const t0 = Date.UTC(2027, 2, 1, 11, 0, 0);
    const failedAt = Date.now();
    const envelopes = Array.from({ length: count }, (_, i) =>
      buildDlqRecord({
        topic: h.topics.bronzeTicks,
        partition: 0,
        offset: i,
        key: new TextEncoder().encode("DEBULK"),
        value: new TextEncoder().encode(json({
          event_id: `bulk-${i}`,
          source: "eex",
          symbol: "DEBULK",
          ts: t0 + i,
          price: String(40 + (i % 100) / 4),
          size: 1 + (i % 5),
        })),
      }, {
        stage: NORMALIZE_STAGE,
        reason: "unknown_instrument",
        message: "symbol: no instrument_map row for (eex, DEBULK)",
        nowMs: failedAt,
      }));
    await sendChunked(
      h.producer,
      envelopes.map((d) => ({
        topic: h.topics.dlq,
        key: `${d.source_topic}/${d.source_partition}`,
        value: JSON.stringify(d),
      })),
    );
    const admin = h.kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(h.topics.dlq).finally(() => admin.disconnect());
    const filled = offsets.filter((p) => Number(p.high) > 0);
    assert.deepEqual(filled.map((p) => [p.low, p.high]), [["0", String(count)]]);
    const partition = String(filled[0]!.partition);
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBULK", instrument_id: "power.bulk" });

    const env = { ...Deno.env.toObject(), ...testEnv.env };
    const run = await runReprocess(env, [
      "--partition",
      partition,
      "--start-offset",
      "0",
      "--end-offset",
      String(count + 500), // clamped to the partition's end
      "--reason",
      "unknown_instrument",
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(run.elapsedMs < 60_000, `took ${run.elapsedMs} ms`);
    assert.match(run.stderr, new RegExp(`${count} of ${count} offsets`));
    const summary = JSON.parse(run.stdout.split("\n").at(-1)!);
    assert.deepEqual(summary, {
      topic: h.topics.dlq,
      partition: Number(partition),
      start_offset: "0",
      end_offset: String(count - 1),
      read: count,
      reprocessed_ok: count,
      failed_again: 0,
      failed_again_by_reason: {},
      skipped_by_filter: 0,
      skipped_not_reprocessable: 0,
    });
    // Each record once: one Silver tick each on the topic, one row each in silver.ticks (no
    // FINAL: a repeated insert would show), nothing failed again.
    assert.equal(await topicRecordCount(h.kafka, h.topics.normalizedTicks), count);
    assert.equal(await topicRecordCount(h.kafka, h.topics.dlq), count);
    const [rows] = await queryRows<{ rows: string; ids: string; instruments: string }>(
      h.ch,
      `SELECT count() AS rows, uniqExact(event_id) AS ids, uniqExact(instrument_id) AS instruments
       FROM ${h.silverDb}.ticks`,
    );
    assert.deepEqual(rows, { rows: String(count), ids: String(count), instruments: "1" });

    // A range inside the partition, starting and ending mid-fetch: exactly its records.
    const part = await runReprocess(env, [
      "--partition",
      partition,
      "--start-offset",
      "3001",
      "--end-offset",
      "16999",
    ]);
    assert.equal(part.code, 0, part.stderr);
    const partSummary = JSON.parse(part.stdout.split("\n").at(-1)!);
    assert.equal(partSummary.read, 13_999);
    assert.equal(partSummary.reprocessed_ok, 13_999);
    assert.match(part.stderr, /13999 of 13999 offsets/);
    assert.equal(await topicRecordCount(h.kafka, h.topics.normalizedTicks), count + 13_999);
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});
