/**
 * A Prometheus histogram with one label whose `observe` is cheap enough for every event.
 * prom-client's builds a label hash and two objects per call (2-3% of a node's thread at
 * 100k events/s, and garbage); here a series is an array of bucket counts found once by
 * label value. It registers like a prom-client metric and exposes the same series, in the
 * same form, to the text exposition and to the worker threads' aggregation
 * (latency_histogram_test.ts compares both with prom-client's Histogram).
 */
import type client from "prom-client";

/** One label value's series: counts per bucket (non-cumulative; the last is +Inf). */
export class LatencySeries {
  readonly #bounds: readonly number[];
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(bounds: readonly number[]) {
    this.#bounds = bounds;
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`Value is not a valid number: ${value}`);
    const bounds = this.#bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

export class LatencyHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = "histogram";
  readonly aggregator = "sum";
  readonly #label: L;
  readonly #bounds: readonly number[];
  #series = new Map<string, LatencySeries>();

  constructor(options: {
    name: string;
    help: string;
    labelName: L;
    buckets: readonly number[];
    registers: client.Registry[];
  }) {
    this.name = options.name;
    this.help = options.help;
    this.#label = options.labelName;
    this.#bounds = [...options.buckets].sort((a, b) => a - b);
    for (const registry of options.registers) registry.registerMetric(this as never);
  }

  /** The series of one label value: keep it and call its `observe` on the hot path. */
  labels(value: string): LatencySeries {
    let series = this.#series.get(value);
    if (!series) {
      series = new LatencySeries(this.#bounds);
      this.#series.set(value, series);
    }
    return series;
  }

  observe(labels: Record<L, string>, value: number): void {
    this.labels(labels[this.#label]).observe(value);
  }

  reset(): void {
    this.#series = new Map();
  }

  /** prom-client's metric form: cumulative buckets, +Inf, sum and count per series. */
  get(): Promise<{
    name: string;
    help: string;
    type: string;
    values: MetricValue[];
    aggregator: string;
  }> {
    const values: MetricValue[] = [];
    for (const [labelValue, series] of this.#series) {
      const labels = (extra: Record<string, string | number>) => ({
        ...extra,
        [this.#label]: labelValue,
      });
      let cumulative = 0;
      this.#bounds.forEach((le, i) => {
        cumulative += series.counts[i]!;
        values.push({
          labels: labels({ le }),
          value: cumulative,
          metricName: `${this.name}_bucket`,
        });
      });
      values.push(
        { labels: labels({ le: "+Inf" }), value: series.count, metricName: `${this.name}_bucket` },
        { labels: labels({}), value: series.sum, metricName: `${this.name}_sum` },
        { labels: labels({}), value: series.count, metricName: `${this.name}_count` },
      );
    }
    return Promise.resolve({
      name: this.name,
      help: this.help,
      type: this.type,
      values,
      aggregator: this.aggregator,
    });
  }
}
