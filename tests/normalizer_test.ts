/** The live normalizer against real Kafka, PostgreSQL and ClickHouse. */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { DlqRecord } from "../messages/dlq_record.ts";
import { NormalizedCurvePoint } from "../messages/normalized_curve_point.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { metrics } from "../observability/metrics.ts";
import { queryRows } from "../stores/clickhouse.ts";
import {
  committedCount,
  json,
  openHarness,
  produceRaw,
  readTopic,
  readTopicUntil,
  silverCounts,
  upsertCurve,
  upsertInstrument,
} from "./normalizer_support.ts";
import { freshEnv, pollUntil } from "./support.ts";

const tick = (overrides: Record<string, unknown>) =>
  json({
    event_id: "t-1",
    source: "eex",
    symbol: "DEBY",
    ts: "2027-01-15T10:00:00Z",
    price: 10,
    size: 1,
    ...overrides,
  });

Deno.test("normalizer applies every normalization rule into the Silver topic and silver tables", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    await upsertInstrument(h.sql, {
      source: "eex",
      symbol: "DEBY",
      instrument_id: "power.de.base",
      commodity: "power",
      region: "DE",
      currency: "EUR",
      unit: "MWh",
    });
    await upsertInstrument(h.sql, {
      source: "cme",
      symbol: "NGc",
      instrument_id: "gas.us.hh",
      price_multiplier: "0.01",
      commodity: "gas",
      currency: "USD",
    });
    await upsertCurve(h.sql, { source: "eex", curve: "DE_BASE", curve_id: "power.de.fwd" });
    await h.startNormalizer();

    const t0 = Date.UTC(2027, 0, 15, 9, 0, 0, 250);
    await produceRaw(h.producer, h.topics.bronzeTicks, [
      // negative power price as a decimal string, zoned ISO time with an offset
      {
        key: "k",
        value: tick({ event_id: "neg", price: "-12.50", ts: "2027-01-15T10:00:00.250+01:00" }),
      },
      // epoch ms and a multiplier applied exactly: 345.67 cents -> 3.4567
      { value: tick({ event_id: "cents", source: "cme", symbol: "NGc", price: 345.67, ts: t0 }) },
      // decimal-string size, Z time with sub-millisecond digits truncated
      { value: tick({ event_id: "dec", size: "2.5", ts: "2027-01-15T09:00:00.250999Z" }) },
    ]);
    await produceRaw(h.producer, h.topics.bronzeCurves, [{
      value: json({
        event_id: "c-1",
        source: "eex",
        curve: "DE_BASE",
        as_of: "2027-01-15",
        tenor: "Cal-2028",
        price: "71.05",
        ts: "2027-01-15T17:30:00-05:00",
      }),
    }]);

    const ticks = (await readTopicUntil(bootstrap, h.topics.normalizedTicks, 3, pollUntil))
      .map((r) => ({ key: r.key, event: NormalizedTick.parse(JSON.parse(r.payload!)) }));
    const byId = new Map(ticks.map((t) => [t.event.event_id, t]));
    assert.equal(byId.get("neg")?.event.price, -12.5);
    assert.equal(byId.get("neg")?.event.event_time_ms, t0);
    assert.equal(byId.get("neg")?.key, "power.de.base");
    assert.equal(byId.get("neg")?.event.commodity, "power");
    assert.equal(byId.get("cents")?.event.price, 3.4567);
    assert.equal(byId.get("cents")?.event.event_time_ms, t0);
    assert.equal(byId.get("cents")?.key, "gas.us.hh");
    assert.equal(byId.get("cents")?.event.region, null);
    assert.equal(byId.get("dec")?.event.size, 2.5);
    assert.equal(byId.get("dec")?.event.event_time_ms, t0);

    const [curve] = await readTopicUntil(bootstrap, h.topics.normalizedCurves, 1, pollUntil);
    const point = NormalizedCurvePoint.parse(JSON.parse(curve!.payload!));
    assert.equal(curve!.key, "power.de.fwd");
    assert.equal(point.price, 71.05);
    assert.equal(point.event_time_ms, Date.UTC(2027, 0, 15, 22, 30));

    const rows = await pollUntil("3 silver ticks", async () => {
      const r = await queryRows<Record<string, unknown>>(
        h.ch,
        `SELECT event_id, instrument_id, event_time_ms, toString(event_time) AS event_time,
           price, size, commodity, region FROM ${h.silverDb}.ticks FINAL ORDER BY event_id`,
      );
      return r.length === 3 ? r : undefined;
    });
    assert.deepEqual(rows.map((r) => [r.event_id, r.price, Number(r.event_time_ms)]), [
      ["cents", 3.4567, t0],
      ["dec", 10, t0],
      ["neg", -12.5, t0],
    ]);
    assert.equal(rows[0]!.event_time, "2027-01-15 09:00:00");
    assert.equal(rows[0]!.region, "");
    const points = await pollUntil("1 silver curve point", async () => {
      const r = await queryRows<Record<string, unknown>>(
        h.ch,
        `SELECT event_id, curve_id, toString(as_of) AS as_of, tenor, price
         FROM ${h.silverDb}.curve_points FINAL`,
      );
      return r.length === 1 ? r : undefined;
    });
    assert.deepEqual(points[0], {
      event_id: "c-1",
      curve_id: "power.de.fwd",
      as_of: "2027-01-15",
      tenor: "Cal-2028",
      price: 71.05,
    });
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer sends each DLQ reason with the original key and value bytes intact", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: "p" });
    await h.startNormalizer();
    const invalidUtf8 = new Uint8Array([0x7b, 0xff, 0xfe, 0x80, 0x7d]);
    const binaryKey = new Uint8Array([0x00, 0xc3, 0x28, 0xff]);
    const cases = [
      {
        key: binaryKey,
        value: invalidUtf8,
        topic: h.topics.bronzeTicks,
        reason: "invalid_payload",
        field: "value",
      },
      {
        key: null,
        value: "not json {",
        topic: h.topics.bronzeTicks,
        reason: "invalid_payload",
        field: "value",
      },
      {
        key: "k",
        value: tick({ ts: "2027-01-15T10:00:00" }),
        topic: h.topics.bronzeTicks,
        reason: "invalid_payload",
        field: "ts",
      },
      {
        key: "k",
        value: tick({ size: 0 }),
        topic: h.topics.bronzeTicks,
        reason: "invalid_payload",
        field: "size",
      },
      {
        key: "k",
        value: tick({ price: "12,5" }),
        topic: h.topics.bronzeTicks,
        reason: "invalid_payload",
        field: "price",
      },
      {
        key: "k",
        value: tick({ event_id: "" }),
        topic: h.topics.bronzeTicks,
        reason: "invalid_payload",
        field: "event_id",
      },
      {
        key: "u",
        value: tick({ symbol: "UNMAPPED" }),
        topic: h.topics.bronzeTicks,
        reason: "unknown_instrument",
        field: "",
      },
      {
        key: null,
        value: json({
          event_id: "c",
          source: "eex",
          curve: "NOPE",
          as_of: "2027-01-15",
          tenor: "2027-02",
          price: 1,
          ts: 0,
        }),
        topic: h.topics.bronzeCurves,
        reason: "unknown_curve",
        field: "",
      },
      {
        key: null,
        value: json({
          event_id: "c",
          source: "eex",
          curve: "NOPE",
          as_of: "2027-02-30",
          tenor: "2027-02",
          price: 1,
          ts: 0,
        }),
        topic: h.topics.bronzeCurves,
        reason: "invalid_payload",
        field: "as_of",
      },
    ];
    // One message at a time so each lands at a known (topic, partition, offset).
    const sent: { topic: string; partition: number; offset: string }[] = [];
    for (const c of cases) {
      const [meta] = await h.producer.send({
        topic: c.topic,
        acks: -1,
        messages: [{
          key: c.key === null ? null : Buffer.from(c.key),
          value: Buffer.from(c.value),
        }],
      });
      sent.push({ topic: c.topic, partition: meta!.partition, offset: meta!.baseOffset! });
    }

    const dlq = (await readTopicUntil(bootstrap, h.topics.dlq, cases.length, pollUntil))
      .map((r) => DlqRecord.parse(JSON.parse(r.payload!)));
    assert.equal(dlq.length, cases.length);
    cases.forEach((c, i) => {
      const where = sent[i]!;
      const record = dlq.find((d) =>
        d.source_topic === where.topic && d.source_partition === where.partition &&
        String(d.source_offset) === where.offset
      );
      assert.ok(record, `no DLQ record for case ${i}`);
      assert.equal(record.stage, "normalize");
      assert.equal(record.reason, c.reason, record.message);
      if (c.field) assert.ok(record.message.startsWith(`${c.field}:`), record.message);
      const expectedValue = typeof c.value === "string"
        ? new TextEncoder().encode(c.value)
        : c.value;
      assert.deepEqual(new Uint8Array(Buffer.from(record.value_b64!, "base64")), expectedValue);
      if (c.key === null) assert.equal(record.key_b64, null);
      else {
        const expectedKey = typeof c.key === "string" ? new TextEncoder().encode(c.key) : c.key;
        assert.deepEqual(new Uint8Array(Buffer.from(record.key_b64!, "base64")), expectedKey);
      }
      assert.ok(record.failed_at_ms > 0);
    });
    // Nothing reached Silver.
    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "ticks"), { rows: 0, distinct: 0 });
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer picks up a reference-data change without a restart", async () => {
  const testEnv = await freshEnv({ DATA_PROC_REFDATA_REFRESH_MS: "200" });
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    await upsertInstrument(h.sql, { source: "ice", symbol: "BRN", instrument_id: "oil.brent" });
    await h.startNormalizer();
    await produceRaw(h.producer, h.topics.bronzeTicks, [{
      value: tick({ event_id: "before", source: "ice", symbol: "BRN", price: "80.10" }),
    }]);
    await readTopicUntil(bootstrap, h.topics.normalizedTicks, 1, pollUntil);

    // A changed multiplier and a brand-new mapping, both while the normalizer runs.
    await h.sql`UPDATE instrument_map SET price_multiplier = 0.01, updated_at = now()
      WHERE source = 'ice' AND symbol = 'BRN'`;
    await upsertInstrument(h.sql, { source: "ice", symbol: "GAS", instrument_id: "gas.nbp" });
    const changed = await pollUntil("the new multiplier applied", async () => {
      const id = `after-${crypto.randomUUID()}`;
      await produceRaw(h.producer, h.topics.bronzeTicks, [{
        value: tick({ event_id: id, source: "ice", symbol: "BRN", price: "8010" }),
      }]);
      const [row] = await pollUntil(`silver row ${id}`, () =>
        queryRows<{ price: number }>(
          h.ch,
          `SELECT price FROM ${h.silverDb}.ticks WHERE event_id = '${id}'`,
        ).then((r) => r.length > 0 ? r : undefined));
      return row!.price === 80.1 ? row : undefined;
    }, { timeoutMs: 20_000 });
    assert.equal(changed.price, 80.1);
    await produceRaw(h.producer, h.topics.bronzeTicks, [{
      value: tick({ event_id: "new-symbol", source: "ice", symbol: "GAS" }),
    }]);
    const row = await pollUntil("the new mapping used", () =>
      queryRows<{ instrument_id: string }>(
        h.ch,
        `SELECT instrument_id FROM ${h.silverDb}.ticks WHERE event_id = 'new-symbol'`,
      ).then((r) => r[0]));
    assert.equal(row.instrument_id, "gas.nbp");
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer leaves a redelivered event_id once in silver.ticks FINAL", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: "p" });
    await h.startNormalizer();
    const same = tick({ event_id: "dup-1", price: "-3.5" });
    await produceRaw(h.producer, h.topics.bronzeTicks, [{ value: same }]);
    await produceRaw(h.producer, h.topics.bronzeTicks, [{ value: same }, { value: same }]);
    const out = await readTopicUntil(bootstrap, h.topics.normalizedTicks, 3, pollUntil);
    // Downstream drops repeats by event_id: the three Silver events are identical but for
    // ingest_time_ms, which is the Bronze append time of each delivery.
    const events = out.map((r) => NormalizedTick.parse(JSON.parse(r.payload!)));
    assert.ok(events.every((e) => e.event_id === "dup-1" && e.price === -3.5));
    // A committed offset means its ClickHouse insert was acknowledged.
    const groupId = `${testEnv.config.DATA_PROC_GROUP_ID}.normalizer`;
    await pollUntil("all three deliveries committed", async () => {
      const n = await committedCount(h.kafka, groupId, h.topics.bronzeTicks);
      return n === 3 ? n : undefined;
    });
    await pollUntil("one row per event_id under FINAL", async () => {
      const counts = await silverCounts(h.ch, h.silverDb, "ticks");
      return counts.rows === 1 && counts.distinct === 1 ? counts : undefined;
    });
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

Deno.test("normalizer retries a store failure with backoff and commits nothing until it succeeds", async () => {
  const testEnv = await freshEnv();
  const h = await openHarness(testEnv);
  try {
    const bootstrap = testEnv.config.DATA_PROC_KAFKA_BOOTSTRAP;
    const groupId = `${testEnv.config.DATA_PROC_GROUP_ID}.normalizer`;
    await upsertInstrument(h.sql, { source: "eex", symbol: "DEBY", instrument_id: "p" });
    // silver.ticks "goes away": every insert fails until it is back.
    await h.ch.command({ query: `RENAME TABLE ${h.silverDb}.ticks TO ${h.silverDb}.ticks_away` });
    const restartsBefore = await restartCount();
    await h.startNormalizer();
    await produceRaw(
      h.producer,
      h.topics.bronzeTicks,
      [1, 2, 3, 4, 5].map((n) => ({ key: "k", value: tick({ event_id: `s-${n}` }) })),
    );
    await pollUntil(
      "a partition normalizer restart",
      async () => (await restartCount()) > restartsBefore ? true : undefined,
    );
    assert.equal(await committedCount(h.kafka, groupId, h.topics.bronzeTicks), 0);
    assert.equal((await readTopic(bootstrap, h.topics.dlq)).length, 0); // not poison: no DLQ

    await h.ch.command({ query: `RENAME TABLE ${h.silverDb}.ticks_away TO ${h.silverDb}.ticks` });
    await pollUntil(
      "all five committed after the store came back",
      async () =>
        (await committedCount(h.kafka, groupId, h.topics.bronzeTicks)) === 5 ? true : undefined,
    );
    assert.deepEqual(await silverCounts(h.ch, h.silverDb, "ticks"), { rows: 5, distinct: 5 });
  } finally {
    await h.close();
    await testEnv.cleanup();
  }
});

async function restartCount(): Promise<number> {
  const metric = await metrics.actorRestarts.get();
  return metric.values.filter((v) => v.labels.level === "normalizer")
    .reduce((sum, v) => sum + v.value, 0);
}
