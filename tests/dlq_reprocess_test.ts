/** `deno task dlq:reprocess` as a real subprocess against the real stack. */
import assert from "node:assert/strict";
import { DlqRecord } from "../messages/dlq_record.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { queryRows } from "../stores/clickhouse.ts";
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

async function runReprocess(env: Record<string, string>, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["task", "dlq:reprocess", ...args],
    cwd: REPO,
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout).trim();
  const stderr = new TextDecoder().decode(out.stderr);
  return { code: out.code, stdout, stderr };
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
