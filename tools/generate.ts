/**
 * `deno task generate`: produces sample Bronze ticks and curve points to the Bronze topics
 * of the config (see tools/bronze_samples.ts for what the samples contain). Progress goes
 * to stderr; the summary is printed as one JSON line on stdout.
 */
import { parseArgs } from "node:util";
import { Buffer } from "node:buffer";
import type { Message } from "kafkajs";
import { type Config, ConfigError, loadConfigFromEnv } from "../config/config.ts";
import { createKafka, ensureTopics, topicNames } from "../stores/kafka.ts";
import { createPostgres, type Sql } from "../stores/postgres.ts";
import { createNormalizedProducer } from "../supervisors/normalization_pipeline.ts";
import {
  bronzeSamples,
  checkSampleOptions,
  type CurveSeed,
  type InstrumentSeed,
  type SampleOptions,
  sampleReferenceData,
} from "./bronze_samples.ts";
import { sleep } from "../timing/sleep.ts";
import { runCli } from "./cli_run.ts";

const HELP = `Usage: deno task generate [options]

Produces sample Bronze ticks and curve points to ingestion.market.ticks.v1 and
ingestion.curves.v1 (with DATA_PROC_TOPIC_PREFIX), for the Kafka of the environment.

Options:
  --rate N              events per second; 0 = as fast as possible (default 100)
  --count N             records to produce; 0 = until interrupted, needs --rate > 0 (default 1000)
  --instruments N       instruments (symbols) to trade (default 7)
  --curves N            forward curves to quote; 0 = ticks only (default 3)
  --seed N              PRNG seed; the same seed and --start-time give the same records
                        (default: random, printed in the summary)
  --start-time T        event time of the first record, ISO-8601 or epoch ms (default: now)
  --step-ms N           event-time step between records (default: 1000/rate, or 1 at rate 0)
  --malformed-ratio R   share of malformed or unmapped records, 0..1 (default 0.02)
  --duplicate-ratio R   share of repeated records (same event_id again), 0..1 (default 0.01)
  --seed-refdata        upsert the reference data the samples need into PostgreSQL first
  --help                show this help (nothing is produced)

Exit codes: 0 done (or interrupted), 2 bad arguments or configuration, 3 a store or the
broker failed.
`;

interface GenerateArgs extends SampleOptions {
  rate: number;
  seedRefdata: boolean;
}

/** Parses and checks the arguments; throws RangeError with a clear message on bad input. */
export function parseGenerateArgs(argv: string[], nowMs: number): GenerateArgs | "help" {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      rate: { type: "string" },
      count: { type: "string" },
      instruments: { type: "string" },
      curves: { type: "string" },
      seed: { type: "string" },
      "start-time": { type: "string" },
      "step-ms": { type: "string" },
      "malformed-ratio": { type: "string" },
      "duplicate-ratio": { type: "string" },
      "seed-refdata": { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) return "help";
  const num = (name: string, text: string | undefined, fallback: number) => {
    if (text === undefined) return fallback;
    const n = Number(text);
    if (text.trim() === "" || !Number.isFinite(n)) {
      throw new RangeError(`--${name} must be a number, got "${text}"`);
    }
    return n;
  };
  const rate = num("rate", values.rate, 100);
  if (!(rate >= 0)) throw new RangeError(`--rate must be >= 0, got ${rate}`);
  const count = num("count", values.count, 1000);
  if (count === 0 && rate === 0) {
    throw new RangeError("--count 0 (until interrupted) needs --rate > 0");
  }
  const startText = values["start-time"];
  const startMs = startText === undefined
    ? nowMs
    : /^\d+$/.test(startText)
    ? Number(startText)
    : Date.parse(startText);
  if (!Number.isFinite(startMs)) {
    throw new RangeError(`--start-time must be ISO-8601 or epoch ms, got "${startText}"`);
  }
  const args: GenerateArgs = {
    rate,
    count,
    instruments: num("instruments", values.instruments, 7),
    curves: num("curves", values.curves, 3),
    seed: num("seed", values.seed, Math.floor(Math.random() * 2 ** 31)),
    startMs,
    stepMs: num("step-ms", values["step-ms"], rate > 0 ? Math.max(1, Math.round(1000 / rate)) : 1),
    malformedRatio: num("malformed-ratio", values["malformed-ratio"], 0.02),
    duplicateRatio: num("duplicate-ratio", values["duplicate-ratio"], 0.01),
    seedRefdata: values["seed-refdata"] ?? false,
  };
  // count 0 means "until interrupted": sample generation itself is unbounded then.
  checkSampleOptions({ ...args, count: args.count === 0 ? 1 : args.count });
  return args;
}

/** Upserts the sample instruments and curves (idempotent; bumps updated_at on change). */
export async function seedReferenceData(
  sql: Sql,
  data: { instruments: InstrumentSeed[]; curves: CurveSeed[] },
): Promise<void> {
  await sql.begin(async (tx) => {
    for (const i of data.instruments) {
      await tx`INSERT INTO instruments (instrument_id, commodity, region, currency, unit)
        VALUES (${i.instrument_id}, ${i.commodity}, ${i.region}, ${i.currency}, ${i.unit})
        ON CONFLICT (instrument_id) DO UPDATE SET commodity = excluded.commodity,
          region = excluded.region, currency = excluded.currency, unit = excluded.unit,
          updated_at = now()`;
      await tx`INSERT INTO instrument_map (source, symbol, instrument_id, price_multiplier)
        VALUES (${i.source}, ${i.symbol}, ${i.instrument_id}, ${i.price_multiplier})
        ON CONFLICT (source, symbol) DO UPDATE SET instrument_id = excluded.instrument_id,
          price_multiplier = excluded.price_multiplier, updated_at = now()`;
    }
    for (const c of data.curves) {
      await tx`INSERT INTO curves (curve_id, commodity, region, currency, unit)
        VALUES (${c.curve_id}, ${c.commodity}, ${c.region}, ${c.currency}, ${c.unit})
        ON CONFLICT (curve_id) DO UPDATE SET commodity = excluded.commodity,
          region = excluded.region, currency = excluded.currency, unit = excluded.unit,
          updated_at = now()`;
      await tx`INSERT INTO curve_map (source, curve, curve_id)
        VALUES (${c.source}, ${c.curve}, ${c.curve_id})
        ON CONFLICT (source, curve) DO UPDATE SET curve_id = excluded.curve_id,
          updated_at = now()`;
    }
  });
}

interface Summary {
  seed: number;
  start_ms: number;
  produced: number;
  ticks: number;
  curve_points: number;
  duplicates: number;
  /** Records expected in Silver (duplicates included: the normalizer is stateless). */
  expected_ok: number;
  expected_ok_ticks: number;
  expected_ok_curve_points: number;
  expected_dlq: Record<string, number>;
  elapsed_ms: number;
  interrupted: boolean;
}

async function produceSamples(
  config: Config,
  args: GenerateArgs,
  signal: AbortSignal,
): Promise<Summary> {
  const topics = topicNames(config.DATA_PROC_TOPIC_PREFIX);
  const kafka = createKafka(config.DATA_PROC_KAFKA_BOOTSTRAP, "generate");
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, topics, config.DATA_PROC_NORMALIZED_PARTITIONS);
  } finally {
    await admin.disconnect();
  }
  const producer = createNormalizedProducer(kafka);
  await producer.connect();
  const summary: Summary = {
    seed: args.seed,
    start_ms: args.startMs,
    produced: 0,
    ticks: 0,
    curve_points: 0,
    duplicates: 0,
    expected_ok: 0,
    expected_ok_ticks: 0,
    expected_ok_curve_points: 0,
    expected_dlq: {},
    elapsed_ms: 0,
    interrupted: false,
  };
  const started = Date.now();
  // With a rate, send a slice every 100 ms; otherwise large batches back to back.
  const batchSize = args.rate > 0 ? Math.max(1, Math.round(args.rate / 10)) : 1000;
  const count = args.count === 0 ? Number.MAX_SAFE_INTEGER : args.count;
  const samples = bronzeSamples({ ...args, count });
  let lastProgress = started;
  try {
    while (!signal.aborted) {
      const ticks: Message[] = [];
      const curves: Message[] = [];
      for (let n = 0; n < batchSize; n++) {
        const next = samples.next();
        if (next.done) break;
        const s = next.value;
        const message = { key: s.key, value: Buffer.from(s.value) };
        if (s.kind === "tick") ticks.push(message);
        else curves.push(message);
        summary[s.kind === "tick" ? "ticks" : "curve_points"] += 1;
        if (s.duplicate) summary.duplicates += 1;
        if (s.expected === "ok") {
          summary.expected_ok += 1;
          summary[s.kind === "tick" ? "expected_ok_ticks" : "expected_ok_curve_points"] += 1;
        } else {
          summary.expected_dlq[s.expected] = (summary.expected_dlq[s.expected] ?? 0) + 1;
        }
      }
      if (ticks.length + curves.length === 0) break;
      await producer.sendBatch({
        acks: -1,
        topicMessages: [
          { topic: topics.bronzeTicks, messages: ticks },
          { topic: topics.bronzeCurves, messages: curves },
        ].filter((t) => t.messages.length > 0),
      });
      summary.produced += ticks.length + curves.length;
      const now = Date.now();
      if (now - lastProgress >= 1000) {
        lastProgress = now;
        console.error(`generate: produced ${summary.produced} records`);
      }
      if (args.rate > 0) {
        const due = started + (summary.produced / args.rate) * 1000;
        await sleep(Math.max(0, due - Date.now()), signal);
      }
    }
  } finally {
    await producer.disconnect();
  }
  summary.interrupted = signal.aborted;
  summary.elapsed_ms = Date.now() - started;
  return summary;
}

async function main(argv: string[]): Promise<number> {
  let args: GenerateArgs | "help";
  try {
    args = parseGenerateArgs(argv, Date.now());
  } catch (err) {
    console.error(`generate: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (args === "help") {
    console.log(HELP);
    return 0;
  }
  let config: Config;
  try {
    config = loadConfigFromEnv();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  if (args.seedRefdata) {
    const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN, { max: 1 });
    try {
      const data = sampleReferenceData(args);
      await seedReferenceData(sql, data);
      console.error(
        `generate: reference data upserted (${data.instruments.length} instruments, ${data.curves.length} curves)`,
      );
    } finally {
      await sql.end();
    }
  }
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    const summary = await produceSamples(config, args, interrupt.signal);
    console.error(
      `generate: done: ${summary.produced} records (${summary.ticks} ticks, ${summary.curve_points} curve points, ` +
        `${summary.duplicates} duplicates, expected DLQ ${JSON.stringify(summary.expected_dlq)}) ` +
        `in ${summary.elapsed_ms} ms, seed ${summary.seed}`,
    );
    console.log(JSON.stringify(summary));
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
  }
}

// runCli: a store or broker failure is exit code 3, like every tool.
if (import.meta.main) Deno.exit(await runCli("generate", main, Deno.args));
