/**
 * The event loop's delay, sampled by a timer into a histogram that is cheap to read: the
 * figures of prom-client's `nodejs_eventloop_lag_*`. prom-client reads Deno's native
 * histogram (perf_hooks' monitorEventLoopDelay), whose `mean` and `stddev` walk the whole of
 * a high-resolution histogram: 15-25 ms of a busy thread's loop at every scrape
 * (docs/benchmarks.md, session 11), so each Prometheus scrape stalled every partition of
 * every thread. Reading this one takes microseconds.
 */
import { setImmediate } from "node:timers";
import client from "prom-client";

/** Bucket bounds grow by 2^(1/16), ~4.4%: a percentile is that close to the truth. */
const BUCKETS_PER_DOUBLING = 16;
const SMALLEST_MS = 0.001;
/** Up to 2^32 µs (~71 minutes); longer delays fall in the last bucket. */
const BUCKETS = BUCKETS_PER_DOUBLING * 32;

/** Delays in milliseconds: exact count, min, max, mean and stddev; percentiles by bucket. */
export class DelayHistogram {
  readonly #counts = new Float64Array(BUCKETS + 1);
  #count = 0;
  #sum = 0;
  #sumOfSquares = 0;
  #min = Infinity;
  #max = 0;

  record(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`Cannot record a delay: must be >= 0 ms, got ${ms}`);
    const index = ms <= SMALLEST_MS
      ? 0
      : Math.min(BUCKETS, Math.ceil(Math.log2(ms / SMALLEST_MS) * BUCKETS_PER_DOUBLING));
    this.#counts[index]!++;
    this.#count++;
    this.#sum += ms;
    this.#sumOfSquares += ms * ms;
    if (ms < this.#min) this.#min = ms;
    if (ms > this.#max) this.#max = ms;
  }

  get count(): number {
    return this.#count;
  }

  /** 0 when nothing was recorded (as Deno's histogram reports), for every figure below. */
  get min(): number {
    return this.#count === 0 ? 0 : this.#min;
  }

  get max(): number {
    return this.#max;
  }

  get mean(): number {
    return this.#count === 0 ? 0 : this.#sum / this.#count;
  }

  /** The population standard deviation. */
  get stddev(): number {
    if (this.#count === 0) return 0;
    const mean = this.#sum / this.#count;
    return Math.sqrt(Math.max(0, this.#sumOfSquares / this.#count - mean * mean));
  }

  /** The upper bound of the bucket that holds the p-th percentile, within [min, max]. */
  percentile(p: number): number {
    if (!(p > 0 && p <= 100)) {
      throw new RangeError(`Cannot take a percentile: p must be in (0, 100], got ${p}`);
    }
    if (this.#count === 0) return 0;
    const rank = Math.ceil((p / 100) * this.#count);
    let seen = 0;
    for (let i = 0; i <= BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) {
        if (i === BUCKETS) return this.#max; // the open-ended last bucket
        const upper = SMALLEST_MS * 2 ** (i / BUCKETS_PER_DOUBLING);
        return Math.min(this.#max, Math.max(this.#min, upper));
      }
    }
    return this.#max;
  }

  reset(): void {
    this.#counts.fill(0);
    this.#count = 0;
    this.#sum = 0;
    this.#sumOfSquares = 0;
    this.#min = Infinity;
    this.#max = 0;
  }
}

/**
 * Records, every `resolutionMs`, how late the loop ran a timer due then. The timer is unref'd
 * (it never keeps a thread alive); the returned function stops it.
 */
export function sampleEventLoopDelay(
  histogram: DelayHistogram,
  options: { resolutionMs: number },
): () => void {
  const { resolutionMs } = options;
  if (!(resolutionMs >= 1)) {
    throw new RangeError(`Cannot sample the loop: resolutionMs must be >= 1, got ${resolutionMs}`);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  const arm = () => {
    const due = performance.now() + resolutionMs;
    timer = setTimeout(() => {
      if (stopped) return;
      histogram.record(Math.max(0, performance.now() - due));
      arm();
    }, resolutionMs);
    Deno.unrefTimer(Number(timer)); // a number in Deno (typed as Node's Timeout here)
  };
  arm();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** prom-client's `nodejs_eventloop_lag_*` families: their names, and their help. */
const FAMILIES = {
  lag: ["nodejs_eventloop_lag_seconds", "Lag of event loop in seconds."],
  min: ["nodejs_eventloop_lag_min_seconds", "The minimum recorded event loop delay."],
  max: ["nodejs_eventloop_lag_max_seconds", "The maximum recorded event loop delay."],
  mean: ["nodejs_eventloop_lag_mean_seconds", "The mean of the recorded event loop delays."],
  stddev: [
    "nodejs_eventloop_lag_stddev_seconds",
    "The standard deviation of the recorded event loop delays.",
  ],
  p50: [
    "nodejs_eventloop_lag_p50_seconds",
    "The 50th percentile of the recorded event loop delays.",
  ],
  p90: [
    "nodejs_eventloop_lag_p90_seconds",
    "The 90th percentile of the recorded event loop delays.",
  ],
  p99: [
    "nodejs_eventloop_lag_p99_seconds",
    "The 99th percentile of the recorded event loop delays.",
  ],
} as const;

export const EVENT_LOOP_LAG_METRICS: readonly string[] = Object.values(FAMILIES).map(([n]) => n);

/**
 * Registers the `nodejs_eventloop_lag_*` gauges on `registry`, fed by a sampler of this
 * thread's loop. Like prom-client's, each scrape reports the delays since the previous one,
 * and `nodejs_eventloop_lag_seconds` the wait of an immediate queued at the previous scrape.
 */
export function registerEventLoopDelay(
  registry: client.Registry,
  options: { resolutionMs: number },
): () => void {
  const histogram = new DelayHistogram();
  const stop = sampleEventLoopDelay(histogram, options);
  const gauge = (family: keyof typeof FAMILIES, collect?: () => void) =>
    new client.Gauge({
      name: FAMILIES[family][0],
      help: FAMILIES[family][1],
      registers: [registry],
      ...(collect ? { collect } : {}),
    });
  const seconds = (ms: number) => ms / 1000;
  // One gauge's collect sets them all, once per scrape.
  const lag = gauge("lag", () => {
    const queued = performance.now();
    setImmediate(() => lag.set(seconds(performance.now() - queued)));
    min.set(seconds(histogram.min));
    max.set(seconds(histogram.max));
    mean.set(seconds(histogram.mean));
    stddev.set(seconds(histogram.stddev));
    p50.set(seconds(histogram.percentile(50)));
    p90.set(seconds(histogram.percentile(90)));
    p99.set(seconds(histogram.percentile(99)));
    histogram.reset();
  });
  const min = gauge("min");
  const max = gauge("max");
  const mean = gauge("mean");
  const stddev = gauge("stddev");
  const p50 = gauge("p50");
  const p90 = gauge("p90");
  const p99 = gauge("p99");
  return stop;
}
