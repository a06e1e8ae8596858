/**
 * A cached, in-memory view of the reference data in PostgreSQL (instrument_map joined with
 * instruments, curve_map joined with curves), so normalization looks up synchronously.
 *
 * Freshness: every `refreshMs` a cheap fingerprint (count and max(updated_at) of the four
 * tables) is compared and the view reloaded only when it changed; every `fullReloadEvery`
 * checks it is reloaded anyway, which catches UPDATEs that did not touch `updated_at`.
 * A lookup miss can ask for an early check (`refreshAfterMiss`), rate-limited, so a mapping
 * added a moment ago is seen quickly without a reload per unknown symbol.
 */
import { CurveRef, InstrumentRef, type ReferenceLookup } from "../messages/reference_lookup.ts";
import type { Logger } from "../observability/logger.ts";
import type { Sql } from "./postgres.ts";

export interface ReferenceDataOptions {
  refreshMs: number;
  logger: Logger;
  signal?: AbortSignal;
  /** Minimum time between refreshes triggered by lookup misses; default min(1000, refreshMs). */
  missRefreshMinIntervalMs?: number;
  /** Reload unconditionally every N periodic checks; default 12. */
  fullReloadEvery?: number;
}

export interface ReferenceData extends ReferenceLookup {
  /** Checks the fingerprint now and reloads if it changed; true when the view changed. */
  refresh(options?: { force?: boolean }): Promise<boolean>;
  /**
   * Like `refresh()`, at most once per `missRefreshMinIntervalMs`; false when skipped or
   * when PostgreSQL cannot be read (never throws).
   */
  refreshAfterMiss(): Promise<boolean>;
  /** Sizes of the current view. */
  size(): { instruments: number; curves: number };
  /** Stops the periodic refresh and waits for a refresh in flight. */
  close(): Promise<void>;
}

const key = (source: string, name: string) => `${source}\u0000${name}`;

interface View {
  instruments: Map<string, InstrumentRef>;
  curves: Map<string, CurveRef>;
}

/** Loads the view once (throws if PostgreSQL cannot be read), then keeps it fresh. */
export async function createReferenceData(
  sql: Sql,
  options: ReferenceDataOptions,
): Promise<ReferenceData> {
  const { refreshMs, logger } = options;
  const missInterval = options.missRefreshMinIntervalMs ?? Math.min(1000, refreshMs);
  const fullReloadEvery = options.fullReloadEvery ?? 12;
  if (!(refreshMs > 0)) {
    throw new RangeError(`Cannot load reference data: refreshMs must be > 0, got ${refreshMs}`);
  }
  if (!(missInterval >= 0)) {
    throw new RangeError(
      `Cannot load reference data: missRefreshMinIntervalMs must be >= 0, got ${missInterval}`,
    );
  }
  if (!Number.isInteger(fullReloadEvery) || fullReloadEvery < 1) {
    throw new RangeError(
      `Cannot load reference data: fullReloadEvery must be an integer >= 1, got ${fullReloadEvery}`,
    );
  }

  let fingerprint = await readFingerprint(sql);
  let view = await loadView(sql, logger);
  let inFlight: Promise<boolean> | undefined;
  let lastMissRefresh = Number.NEGATIVE_INFINITY;
  let checks = 0;
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;

  // One refresh at a time: concurrent callers share the one in flight.
  const refresh = (opts: { force?: boolean } = {}): Promise<boolean> => {
    inFlight ??= (async () => {
      try {
        const next = await readFingerprint(sql);
        if (!opts.force && next === fingerprint) return false;
        view = await loadView(sql, logger);
        fingerprint = next;
        logger.info("reference data reloaded", {
          instruments: view.instruments.size,
          curves: view.curves.size,
        });
        return true;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };

  const schedule = () => {
    if (closed) return;
    timer = setTimeout(async () => {
      checks += 1;
      try {
        await refresh({ force: checks % fullReloadEvery === 0 });
      } catch (err) {
        // The cached view stays valid; the next tick tries again.
        logger.warn("reference data refresh failed; serving the cached view", { error: err });
      }
      schedule();
    }, refreshMs);
  };

  const close = async () => {
    closed = true;
    if (timer !== undefined) clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    await inFlight?.catch(() => {});
  };
  const onAbort = () => void close();
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) closed = true;
  schedule();

  return {
    instrument: (source, symbol) => view.instruments.get(key(source, symbol)),
    curve: (source, curve) => view.curves.get(key(source, curve)),
    refresh,
    refreshAfterMiss: async () => {
      const now = Date.now();
      if (now - lastMissRefresh < missInterval) return false;
      lastMissRefresh = now;
      try {
        return await refresh();
      } catch (err) {
        // Best effort: a PostgreSQL outage must not stall normalization; the cached view
        // decides (misses go to the DLQ, from where they can be reprocessed).
        logger.warn("reference data refresh after a miss failed; using the cached view", {
          error: err,
        });
        return false;
      }
    },
    size: () => ({ instruments: view.instruments.size, curves: view.curves.size }),
    close,
  };
}

async function readFingerprint(sql: Sql): Promise<string> {
  const rows = await sql<{ fingerprint: string }[]>`
    SELECT concat_ws('|',
      (SELECT count(*) || '@' || coalesce(max(updated_at)::text, '') FROM instrument_map),
      (SELECT count(*) || '@' || coalesce(max(updated_at)::text, '') FROM instruments),
      (SELECT count(*) || '@' || coalesce(max(updated_at)::text, '') FROM curve_map),
      (SELECT count(*) || '@' || coalesce(max(updated_at)::text, '') FROM curves)
    ) AS fingerprint`;
  return rows[0]!.fingerprint;
}

async function loadView(sql: Sql, logger: Logger): Promise<View> {
  const [instrumentRows, curveRows] = await Promise.all([
    sql<{ source: string; symbol: string }[]>`
      SELECT m.source, m.symbol, m.instrument_id, m.price_multiplier::text AS price_multiplier,
             i.commodity, i.region, i.currency, i.unit
      FROM instrument_map m LEFT JOIN instruments i ON i.instrument_id = m.instrument_id`,
    sql<{ source: string; curve: string }[]>`
      SELECT m.source, m.curve, m.curve_id, c.commodity, c.region, c.currency, c.unit
      FROM curve_map m LEFT JOIN curves c ON c.curve_id = m.curve_id`,
  ]);
  const instruments = new Map<string, InstrumentRef>();
  for (const { source, symbol, ...row } of instrumentRows) {
    const ref = InstrumentRef.safeParse(row);
    if (!ref.success) {
      // e.g. a NaN price_multiplier: such a mapping cannot price anything, so leave it out.
      logger.warn("instrument_map entry does not decode; ignored", {
        source,
        symbol,
        row,
        error: ref.error.message,
      });
      continue;
    }
    instruments.set(key(source, symbol), ref.data);
  }
  const curves = new Map<string, CurveRef>();
  for (const { source, curve, ...row } of curveRows) {
    const ref = CurveRef.safeParse(row);
    if (!ref.success) {
      logger.warn("curve_map entry does not decode; ignored", {
        source,
        curve,
        row,
        error: ref.error.message,
      });
      continue;
    }
    curves.set(key(source, curve), ref.data);
  }
  return { instruments, curves };
}
