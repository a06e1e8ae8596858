/** The cached reference-data view against a real PostgreSQL. */
import assert from "node:assert/strict";
import { createLogger } from "../observability/logger.ts";
import { createPostgres } from "../stores/postgres.ts";
import { createReferenceData } from "../stores/reference_data.ts";
import { upsertCurve, upsertInstrument } from "./normalizer_support.ts";
import { freshEnv, pollUntil } from "./support.ts";

const logger = createLogger("test.refdata");

Deno.test("reference data joins mappings with enrichment and reloads only on change", async () => {
  const testEnv = await freshEnv();
  const sql = createPostgres(testEnv.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  try {
    await upsertInstrument(sql, {
      source: "cme",
      symbol: "NGc",
      instrument_id: "gas.hh",
      price_multiplier: "0.010",
      commodity: "gas",
      unit: "MMBtu",
    });
    await upsertCurve(sql, { source: "eex", curve: "DE", curve_id: "power.de.fwd" });
    // numeric allows NaN: such a mapping is left out rather than pricing everything as NaN.
    await sql`INSERT INTO instrument_map (source, symbol, instrument_id, price_multiplier)
      VALUES ('cme', 'BAD', 'x', 'NaN')`;
    const refdata = await createReferenceData(sql, {
      refreshMs: 60_000,
      logger,
      missRefreshMinIntervalMs: 60_000,
    });
    try {
      assert.deepEqual(refdata.instrument("cme", "NGc"), {
        instrument_id: "gas.hh",
        price_multiplier: "0.010",
        commodity: "gas",
        region: null,
        currency: null,
        unit: "MMBtu",
      });
      assert.equal(refdata.curve("eex", "DE")?.curve_id, "power.de.fwd");
      assert.equal(refdata.instrument("cme", "BAD"), undefined);
      assert.equal(await refdata.refresh(), false); // unchanged fingerprint: no reload

      await upsertInstrument(sql, { source: "ice", symbol: "BRN", instrument_id: "oil" });
      assert.equal(await refdata.refreshAfterMiss(), true);
      assert.equal(refdata.instrument("ice", "BRN")?.instrument_id, "oil");
      // Rate-limited: a second miss right away does not query again.
      await upsertInstrument(sql, { source: "ice", symbol: "TFM", instrument_id: "gas.ttf" });
      assert.equal(await refdata.refreshAfterMiss(), false);
      assert.equal(refdata.instrument("ice", "TFM"), undefined);

      // An UPDATE that does not set updated_at still changes the fingerprint (trigger).
      await sql`UPDATE instrument_map SET price_multiplier = 5 WHERE symbol = 'NGc'`;
      assert.equal(await refdata.refresh(), true);
      assert.equal(refdata.instrument("cme", "NGc")?.price_multiplier, "5");
      assert.equal(refdata.instrument("ice", "TFM")?.instrument_id, "gas.ttf");
    } finally {
      await refdata.close();
    }
  } finally {
    await sql.end();
    await testEnv.cleanup();
  }
});

Deno.test("reference data refreshes periodically until its signal aborts", async () => {
  const testEnv = await freshEnv();
  const sql = createPostgres(testEnv.config.DATA_PROC_POSTGRES_DSN, { max: 1 });
  const stop = new AbortController();
  try {
    const refdata = await createReferenceData(sql, { refreshMs: 100, logger, signal: stop.signal });
    await upsertInstrument(sql, { source: "eex", symbol: "DEBY", instrument_id: "power.de" });
    await pollUntil(
      "the periodic refresh",
      () => Promise.resolve(refdata.instrument("eex", "DEBY") ? true : undefined),
    );
    stop.abort();
    await refdata.close();
  } finally {
    await sql.end();
    await testEnv.cleanup();
  }
});

Deno.test("reference data refuses bad options before touching PostgreSQL", async () => {
  const sql = createPostgres("postgres://nobody@127.0.0.1:1/none", { max: 1 });
  try {
    await assert.rejects(
      createReferenceData(sql, { refreshMs: 0, logger }),
      (err: Error) => err instanceof RangeError && /refreshMs must be > 0, got 0/.test(err.message),
    );
  } finally {
    await sql.end();
  }
});
