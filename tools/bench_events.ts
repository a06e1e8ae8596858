/**
 * Generated events for `deno task bench`: normalized ticks as the normalizer writes them,
 * with watermark records, produced as fast as possible or at a steady rate.
 */
import type { Producer } from "kafkajs";
import { CONTROL_HEADER, WATERMARK_CONTROL } from "../messages/watermark.ts";
import { sleep } from "../timing/sleep.ts";

// Streaming: never holds all events.

/** Picks 0..n-1 with probability proportional to 1 / (k + 1)^skew. */
export function zipfPicker(n: number, skew: number, random: () => number): () => number {
  const cumulative = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, skew);
    cumulative[k] = total;
  }
  return () => {
    const x = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cumulative[mid]! > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

export interface OutMessage {
  key: string | null;
  value: string;
  partition?: number;
  headers?: Record<string, string>;
}

/** Events between two watermark records, as a normalizer of one busy source writes them. */
export const WATERMARK_EVERY = 5000;

/**
 * Normalized ticks as the normalizer writes them, JSON-encoded on the fly. About 2% of the
 * events are delayed by up to 3 s (inside the default 5 s lateness) and 0.5% repeat one of
 * the last 1000 events (redeliveries). `sweep` first visits every instrument once (the
 * memory run: every instrument seen), then picks by Zipf; `cycle` visits them in turn forever
 * (the replay run's history: every key in every minute). After every WATERMARK_EVERY events,
 * a watermark record (the greatest event time so far, one source) goes to every partition, so
 * the node's clock moves and bars close as they do behind the normalizer.
 */
export class TickStream {
  readonly #random: () => number;
  readonly #pick: () => number;
  readonly #width: number;
  readonly #levels: Float64Array;
  readonly #recent: OutMessage[] = [];
  readonly #instruments: number;
  readonly #partitions: number;
  #serial = 0;
  #maxEventTime = -Infinity;
  #sweep: number;
  readonly #cycle: boolean;
  readonly #idPrefix: string;
  readonly #symbolPrefix: string;
  /** Event time of the next event: a function of the serial, or the wall clock. */
  readonly #timeOf: (serial: number) => number;

  constructor(options: {
    /** A seeded generator (the same seed gives the same events). */
    random: () => number;
    instruments: number;
    skew: number;
    sweep?: boolean;
    /** Visit the instruments in turn forever (every key in every stretch of n events). */
    cycle?: boolean;
    /**
     * Instrument ids are `${idPrefix}0001`... (default "INST-"): streams with different
     * prefixes have disjoint keys (symbols `SYM-0001`..., or `SYM-${idPrefix}0001`...).
     */
    idPrefix?: string;
    partitions: number;
    timeOf: (serial: number) => number;
  }) {
    this.#random = options.random;
    this.#partitions = options.partitions;
    this.#instruments = options.instruments;
    this.#pick = zipfPicker(options.instruments, options.skew, this.#random);
    this.#width = Math.max(4, String(options.instruments).length);
    this.#levels = new Float64Array(options.instruments);
    for (let i = 0; i < options.instruments; i++) {
      this.#levels[i] = Math.round(this.#random() * 200) - 50;
    }
    this.#sweep = options.sweep ? 0 : options.instruments;
    this.#cycle = options.cycle ?? false;
    this.#idPrefix = options.idPrefix ?? "INST-";
    this.#symbolPrefix = options.idPrefix === undefined ? "SYM-" : `SYM-${options.idPrefix}`;
    this.#timeOf = options.timeOf;
  }

  /** The id of instrument k (0-based), as the events carry it. */
  instrumentId(k: number): string {
    return `${this.#idPrefix}${this.#number(k)}`;
  }

  #number(k: number): string {
    return String(k + 1).padStart(this.#width, "0");
  }

  next(n: number): OutMessage[] {
    const out: OutMessage[] = [];
    const random = this.#random;
    for (let j = 0; j < n; j++) {
      const i = this.#serial++;
      if (this.#recent.length > 0 && random() < 0.005) {
        out.push(this.#recent[Math.floor(random() * this.#recent.length)]!);
        continue;
      }
      const k = this.#cycle
        ? i % this.#instruments
        : this.#sweep < this.#instruments
        ? this.#sweep++
        : this.#pick();
      const now = this.#timeOf(i);
      const eventTime = random() < 0.02 ? now - Math.floor(random() * 3000) : now;
      const id = this.instrumentId(k);
      const hex = Math.floor(random() * 0x100000000).toString(16).padStart(8, "0");
      const message = {
        key: id,
        value: JSON.stringify({
          event_id: `b-${hex}-${i}`,
          instrument_id: id,
          event_time_ms: eventTime,
          price: Math.round((this.#levels[k]! + (random() - 0.5) * 20) * 100) / 100,
          size: (1 + Math.floor(random() * 100)) / 10,
          source: "bench",
          symbol: `${this.#symbolPrefix}${this.#number(k)}`,
          commodity: "power",
          region: "DE",
          currency: "EUR",
          unit: "MWh",
          ingest_time_ms: now,
        }),
      };
      out.push(message);
      if (this.#recent.length < 1000) this.#recent.push(message);
      else this.#recent[i % 1000] = message;
      this.#maxEventTime = Math.max(this.#maxEventTime, eventTime);
      if ((i + 1) % WATERMARK_EVERY === 0) this.#pushWatermarks(out);
    }
    return out;
  }

  #pushWatermarks(out: OutMessage[]): void {
    const value = JSON.stringify({
      type: "watermark",
      source_topic: "bench.ingestion.market.ticks.v1",
      source_partition: 0,
      watermark_ms: this.#maxEventTime,
      idle: false,
      wall_ms: Date.now(),
      source_partitions: 1,
    });
    for (let partition = 0; partition < this.#partitions; partition++) {
      out.push({ key: null, value, partition, headers: { [CONTROL_HEADER]: WATERMARK_CONTROL } });
    }
  }
}

/** Sends with at most `max` pending: `add` waits while that many are; the first failure throws. */
class InFlight {
  readonly #max: number;
  readonly #pending = new Set<Promise<void>>();
  #failure: { error: unknown } | null = null;

  constructor(max: number) {
    this.#max = max;
  }

  async add(send: Promise<unknown>, onAck?: () => void): Promise<void> {
    const p: Promise<void> = send.then(
      () => {
        onAck?.();
        this.#pending.delete(p);
      },
      (error) => {
        this.#failure ??= { error };
        this.#pending.delete(p);
      },
    );
    this.#pending.add(p);
    if (this.#pending.size >= this.#max) await Promise.race(this.#pending);
    if (this.#failure) throw this.#failure.error;
  }

  async settle(): Promise<void> {
    await Promise.all(this.#pending);
    if (this.#failure) throw this.#failure.error;
  }
}

/** Produces `total` events in batches of `batchSize` with up to `inFlight` sends pending. */
export async function produceAll(
  producer: Producer,
  topic: string,
  stream: TickStream,
  total: number,
  options: { batchSize?: number; inFlight?: number } = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 5000;
  const sends = new InFlight(options.inFlight ?? 4);
  const started = performance.now();
  for (let sent = 0; sent < total;) {
    const n = Math.min(batchSize, total - sent);
    const messages = stream.next(n);
    sent += n;
    await sends.add(producer.send({ topic, acks: -1, messages }));
  }
  await sends.settle();
  return total / ((performance.now() - started) / 1000);
}

/**
 * Produces `total` events at `rate` per second: every 20 ms it sends what is due, in
 * requests of at most 2000 records (a late tick must not build one oversized request), up
 * to 4 of them awaiting their acknowledgement (one at a time, a slow ack held the rate
 * back: 49k of 97k/s asked). One connection keeps them in order. Stops early when `signal`
 * aborts.
 */
export async function producePaced(
  producer: Producer,
  topic: string,
  stream: TickStream,
  total: number,
  rate: number,
  signal?: AbortSignal,
): Promise<{ seconds: number; maxGapMs: number; sent: number; ackMs: number[] }> {
  const started = performance.now();
  let sent = 0;
  let maxGapMs = 0;
  const ackMs: number[] = [];
  let lastTick = started;
  const sends = new InFlight(4);
  while (sent < total && !signal?.aborted) {
    const now = performance.now();
    maxGapMs = Math.max(maxGapMs, now - lastTick);
    lastTick = now;
    const due = Math.min(total, Math.floor(((now - started) / 1000) * rate));
    while (sent < due) {
      const n = Math.min(2000, due - sent);
      const messages = stream.next(n);
      const sentAt = performance.now();
      sent += n;
      await sends.add(
        producer.send({ topic, acks: -1, messages }),
        () => ackMs.push(performance.now() - sentAt),
      );
    }
    if (sent < total) await sleep(20, signal);
  }
  await sends.settle();
  return { seconds: (performance.now() - started) / 1000, maxGapMs, sent, ackMs };
}
