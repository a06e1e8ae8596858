/**
 * Deterministic sample Bronze data (same options, same records): ticks and curve points
 * from several sources, negative power prices, decimal strings, zoned ISO times and epoch
 * ms, plus deliberate duplicates and malformed records. Each record says what the
 * normalizer should do with it, so tests can account for every one.
 */
import type { DlqReason } from "../messages/dlq_record.ts";

export interface SampleOptions {
  count: number;
  instruments: number;
  curves: number;
  seed: number;
  malformedRatio: number;
  duplicateRatio: number;
  /** Event time of the first record (epoch ms). */
  startMs: number;
  /** Event-time step between records (ms). */
  stepMs: number;
}

export type Expected =
  | "ok"
  | Extract<DlqReason, "invalid_payload" | "unknown_instrument" | "unknown_curve">;

export interface SampleRecord {
  kind: "tick" | "curve";
  key: string | null;
  value: Uint8Array;
  expected: Expected;
  /** A repeat of an earlier valid record (same bytes, same event_id). */
  duplicate: boolean;
}

export interface InstrumentSeed {
  source: string;
  symbol: string;
  instrument_id: string;
  price_multiplier: string;
  commodity: string;
  region: string;
  currency: string;
  unit: string;
}

export interface CurveSeed {
  source: string;
  curve: string;
  curve_id: string;
  commodity: string;
  region: string;
  currency: string;
  unit: string;
}

interface PriceModel {
  base: number;
  spread: number;
  decimals: number;
}

const INSTRUMENTS: (Omit<InstrumentSeed, "symbol" | "instrument_id"> & PriceModel & {
  symbol: string;
  id: string;
})[] = [
  // German and French day-ahead power trade below zero when wind and solar flood the grid.
  {
    source: "eex",
    symbol: "DEBY",
    id: "power.de.base",
    price_multiplier: "1",
    commodity: "power",
    region: "DE",
    currency: "EUR",
    unit: "MWh",
    base: 15,
    spread: 60,
    decimals: 2,
  },
  {
    source: "ice",
    symbol: "BRN",
    id: "oil.brent",
    price_multiplier: "1",
    commodity: "oil",
    region: "EU",
    currency: "USD",
    unit: "bbl",
    base: 80,
    spread: 5,
    decimals: 2,
  },
  // Quoted in cents: the multiplier turns them into USD.
  {
    source: "cme",
    symbol: "NGc",
    id: "gas.us.henryhub",
    price_multiplier: "0.01",
    commodity: "gas",
    region: "US",
    currency: "USD",
    unit: "MMBtu",
    base: 320,
    spread: 40,
    decimals: 1,
  },
  {
    source: "eex",
    symbol: "FRBY",
    id: "power.fr.base",
    price_multiplier: "1",
    commodity: "power",
    region: "FR",
    currency: "EUR",
    unit: "MWh",
    base: 10,
    spread: 55,
    decimals: 2,
  },
  {
    source: "ice",
    symbol: "TFM",
    id: "gas.nl.ttf",
    price_multiplier: "1",
    commodity: "gas",
    region: "NL",
    currency: "EUR",
    unit: "MWh",
    base: 35,
    spread: 4,
    decimals: 3,
  },
  {
    source: "cme",
    symbol: "CLc",
    id: "oil.us.wti",
    price_multiplier: "0.01",
    commodity: "oil",
    region: "US",
    currency: "USD",
    unit: "bbl",
    base: 7600,
    spread: 300,
    decimals: 0,
  },
  // Quoted per GWh: the multiplier turns them into EUR/MWh.
  {
    source: "eex",
    symbol: "DEPK",
    id: "power.de.peak",
    price_multiplier: "0.001",
    commodity: "power",
    region: "DE",
    currency: "EUR",
    unit: "MWh",
    base: 40000,
    spread: 70000,
    decimals: 0,
  },
];

const CURVES:
  (Omit<CurveSeed, "curve" | "curve_id"> & PriceModel & { curve: string; id: string })[] = [
    {
      source: "eex",
      curve: "DE_BASE_FWD",
      id: "power.de.base.fwd",
      commodity: "power",
      region: "DE",
      currency: "EUR",
      unit: "MWh",
      base: 70,
      spread: 30,
      decimals: 2,
    },
    {
      source: "ice",
      curve: "TTF_FWD",
      id: "gas.nl.ttf.fwd",
      commodity: "gas",
      region: "NL",
      currency: "EUR",
      unit: "MWh",
      base: 35,
      spread: 8,
      decimals: 3,
    },
    {
      source: "cme",
      curve: "HH_FWD",
      id: "gas.us.henryhub.fwd",
      commodity: "gas",
      region: "US",
      currency: "USD",
      unit: "MMBtu",
      base: 3.2,
      spread: 0.8,
      decimals: 3,
    },
  ];

/** Checks sample options; throws RangeError naming the bad one. */
export function checkSampleOptions(o: SampleOptions): void {
  const bad = (name: string, rule: string, got: unknown) => {
    throw new RangeError(`Cannot generate samples: ${name} must be ${rule}, got ${got}`);
  };
  if (!Number.isInteger(o.count) || o.count < 0) bad("count", "an integer >= 0", o.count);
  if (!Number.isInteger(o.instruments) || o.instruments < 1) {
    bad("instruments", "an integer >= 1", o.instruments);
  }
  if (!Number.isInteger(o.curves) || o.curves < 0) bad("curves", "an integer >= 0", o.curves);
  if (!Number.isInteger(o.seed)) bad("seed", "an integer", o.seed);
  for (
    const [name, v] of [["malformedRatio", o.malformedRatio], [
      "duplicateRatio",
      o.duplicateRatio,
    ]] as const
  ) {
    if (!(v >= 0 && v <= 1)) bad(name, "between 0 and 1", v);
  }
  if (!(o.malformedRatio + o.duplicateRatio <= 1)) {
    bad("malformedRatio + duplicateRatio", "<= 1", o.malformedRatio + o.duplicateRatio);
  }
  if (!Number.isSafeInteger(o.startMs) || o.startMs < 0) bad("startMs", "epoch ms >= 0", o.startMs);
  if (!Number.isInteger(o.stepMs) || o.stepMs < 0) bad("stepMs", "an integer >= 0", o.stepMs);
}

/** The reference data the samples need (unmapped symbols and curves are never in it). */
export function sampleReferenceData(o: Pick<SampleOptions, "instruments" | "curves">) {
  const instruments: InstrumentSeed[] = [];
  for (let i = 0; i < o.instruments; i++) {
    const { base: _b, spread: _s, decimals: _d, id, symbol, ...t } =
      INSTRUMENTS[i % INSTRUMENTS.length]!;
    const gen = Math.floor(i / INSTRUMENTS.length);
    instruments.push({
      ...t,
      symbol: gen === 0 ? symbol : `${symbol}${gen}`,
      instrument_id: gen === 0 ? id : `${id}.${gen}`,
    });
  }
  const curves: CurveSeed[] = [];
  for (let i = 0; i < o.curves; i++) {
    const { base: _b, spread: _s, decimals: _d, id, curve, ...t } = CURVES[i % CURVES.length]!;
    const gen = Math.floor(i / CURVES.length);
    curves.push({
      ...t,
      curve: gen === 0 ? curve : `${curve}${gen}`,
      curve_id: gen === 0 ? id : `${id}.${gen}`,
    });
  }
  return { instruments, curves };
}

/** mulberry32: a small, fast, seedable PRNG (uniform in [0, 1)). */
export function createRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const encoder = new TextEncoder();
const encode = (value: unknown) => encoder.encode(JSON.stringify(value));

/** Event time in one of the accepted forms: ISO with Z, ISO with an offset, or epoch ms. */
function timeField(ms: number, pick: number): string | number {
  if (pick < 0.4) return new Date(ms).toISOString();
  if (pick < 0.7) {
    // Same instant written in CET (+01:00).
    return new Date(ms + 3_600_000).toISOString().replace("Z", "+01:00");
  }
  return ms;
}

function priceField(model: PriceModel, rnd: () => number): number | string {
  const value = model.base + (rnd() * 2 - 1) * model.spread;
  const text = value.toFixed(model.decimals);
  return rnd() < 0.5 ? text : Number(text);
}

function tenorsFor(year: number): string[] {
  const next = year + 1;
  const months = Array.from({ length: 12 }, (_, m) => `${next}-${String(m + 1).padStart(2, "0")}`);
  const quarters = [1, 2, 3, 4].map((q) => `${next}-Q${q}`);
  return [...months, ...quarters, `Cal-${next + 1}`, `Cal-${next + 2}`];
}

/** Yields `count` records; the same options always give the same records. */
export function* bronzeSamples(o: SampleOptions): Generator<SampleRecord> {
  checkSampleOptions(o);
  const rnd = createRandom(o.seed);
  const refdata = sampleReferenceData(o);
  const valid: SampleRecord[] = []; // candidates for duplicates (bounded)
  for (let i = 0; i < o.count; i++) {
    const ms = o.startMs + i * o.stepMs;
    const roll = rnd();
    if (roll < o.duplicateRatio && valid.length > 0) {
      const original = valid[Math.floor(rnd() * valid.length)]!;
      yield { ...original, duplicate: true };
      continue;
    }
    const malformed = roll >= o.duplicateRatio && roll < o.duplicateRatio + o.malformedRatio;
    const isCurve = refdata.curves.length > 0 && rnd() < 0.2;
    const record = isCurve
      ? curveRecord(i, ms, o, refdata.curves, rnd)
      : tickRecord(i, ms, o, refdata.instruments, rnd);
    if (malformed) {
      yield malform(record, i, rnd);
      continue;
    }
    if (valid.length < 1000) valid.push(record);
    else valid[Math.floor(rnd() * valid.length)] = record;
    yield record;
  }
}

function tickRecord(
  i: number,
  ms: number,
  o: SampleOptions,
  instruments: InstrumentSeed[],
  rnd: () => number,
): SampleRecord {
  const index = Math.floor(rnd() * instruments.length);
  const seed = instruments[index]!;
  const model = INSTRUMENTS[index % INSTRUMENTS.length]!;
  const size = rnd() < 0.5 ? Number((1 + rnd() * 49).toFixed(1)) : (1 + rnd() * 49).toFixed(2);
  return {
    kind: "tick",
    key: `${seed.source}:${seed.symbol}`,
    value: encode({
      event_id: `gen-${o.seed}-t-${i}`,
      source: seed.source,
      symbol: seed.symbol,
      ts: timeField(ms, rnd()),
      price: priceField(model, rnd),
      size,
    }),
    expected: "ok",
    duplicate: false,
  };
}

function curveRecord(
  i: number,
  ms: number,
  o: SampleOptions,
  curves: CurveSeed[],
  rnd: () => number,
): SampleRecord {
  const index = Math.floor(rnd() * curves.length);
  const seed = curves[index]!;
  const model = CURVES[index % CURVES.length]!;
  const tenors = tenorsFor(new Date(ms).getUTCFullYear());
  return {
    kind: "curve",
    key: `${seed.source}:${seed.curve}`,
    value: encode({
      event_id: `gen-${o.seed}-c-${i}`,
      source: seed.source,
      curve: seed.curve,
      as_of: new Date(ms).toISOString().slice(0, 10),
      tenor: tenors[Math.floor(rnd() * tenors.length)],
      price: priceField(model, rnd),
      ts: timeField(ms, rnd()),
    }),
    expected: "ok",
    duplicate: false,
  };
}

/** Breaks a valid record in one of several ways, each with its expected DLQ reason. */
function malform(record: SampleRecord, i: number, rnd: () => number): SampleRecord {
  const json = JSON.parse(new TextDecoder().decode(record.value)) as Record<string, unknown>;
  const broken = (value: unknown, expected: Expected): SampleRecord => ({
    ...record,
    value: value instanceof Uint8Array ? value : encode(value),
    expected,
  });
  switch (Math.floor(rnd() * 7)) {
    case 0:
      return broken(new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), "invalid_payload"); // not UTF-8
    case 1:
      return broken(encoder.encode(`event_id=${i};price=oops`), "invalid_payload"); // not JSON
    case 2:
      return broken({ ...json, ts: "2027-01-15T10:00:00" }, "invalid_payload"); // no zone
    case 3:
      return broken({ ...json, price: "n/a" }, "invalid_payload");
    case 4:
      return record.kind === "tick"
        ? broken({ ...json, size: 0 }, "invalid_payload")
        : broken({ ...json, as_of: "2027-02-30" }, "invalid_payload");
    case 5:
      return broken({ ...json, event_id: undefined }, "invalid_payload");
    default:
      return record.kind === "tick"
        ? broken({ ...json, symbol: `UNMAPPED${i % 5}` }, "unknown_instrument")
        : broken({ ...json, curve: `UNMAPPED_CURVE${i % 5}` }, "unknown_curve");
  }
}
