/**
 * The source watermarks of the Bronze ticks partitions this normalizer owns (CONTRACT.md,
 * "Event time"): per partition, the greatest event time among the ticks normalized from it
 * since it was assigned, raised only once their Silver events were acknowledged, and whether
 * the source is idle. Pure state with time passed in; `watermark_writer.ts` writes it out.
 *
 * "Normalized" means sent to Silver: DLQ'd records (unknown_instrument included) neither
 * move the watermark nor keep a source active, so a partition fed only bad records does
 * not hold every reader's clock.
 */

export interface SourceReport {
  partition: number;
  /** Null while no tick was normalized from the partition since it was assigned. */
  watermarkMs: number | null;
  idle: boolean;
}

export interface SourceWatermarksOptions {
  /** DATA_PROC_IDLE_CLOSE_MS: wall time without a normalized tick after which a source is idle. */
  idleAfterMs: number;
  /** Called when a source turns idle (`idle: true`) or active again (`idle: false`). */
  onIdleChange?: (change: SourceReport) => void;
}

interface SourceState {
  watermarkMs: number | null;
  /** Wall time of the last acknowledged Silver tick, or of the assignment. */
  activeAtMs: number;
  idle: boolean;
  /** Batches being normalized: a source with work in hand (e.g. a store outage) never turns idle. */
  batchesInHand: number;
}

export class SourceWatermarks {
  readonly #idleAfterMs: number;
  readonly #onIdleChange: (change: SourceReport) => void;
  readonly #sources = new Map<number, SourceState>();

  constructor(options: SourceWatermarksOptions) {
    if (!Number.isInteger(options.idleAfterMs) || options.idleAfterMs < 1) {
      throw new RangeError(
        `Cannot track source watermarks: idleAfterMs must be an integer >= 1, got ${options.idleAfterMs}`,
      );
    }
    this.#idleAfterMs = options.idleAfterMs;
    this.#onIdleChange = options.onIdleChange ?? (() => {});
  }

  /**
   * Sets the owned partitions: kept ones keep their state, new ones start with no watermark
   * (an empty one turns idle `idleAfterMs` after `nowMs`), lost ones are no longer reported.
   */
  assign(partitions: Iterable<number>, nowMs: number): void {
    const wanted = new Set(partitions);
    for (const p of this.#sources.keys()) if (!wanted.has(p)) this.#sources.delete(p);
    for (const p of wanted) {
      if (this.#sources.has(p)) continue;
      this.#sources.set(p, { watermarkMs: null, activeAtMs: nowMs, idle: false, batchesInHand: 0 });
    }
  }

  /** The owned partitions, ascending. */
  owned(): number[] {
    return [...this.#sources.keys()].sort((a, b) => a - b);
  }

  /** A batch of the partition is being normalized, until `batchDone`. */
  batchStarted(partition: number): void {
    const s = this.#sources.get(partition);
    if (s) s.batchesInHand += 1;
  }

  batchDone(partition: number): void {
    const s = this.#sources.get(partition);
    if (s) s.batchesInHand = Math.max(0, s.batchesInHand - 1);
  }

  /**
   * Call only after the Silver ticks with these event times were acknowledged by Kafka:
   * raises the partition's watermark and marks it active. Ignored for a partition not owned.
   */
  acknowledged(partition: number, eventTimesMs: readonly number[], nowMs: number): void {
    const s = this.#sources.get(partition);
    if (!s || eventTimesMs.length === 0) return;
    const max = eventTimesMs.reduce((a, b) => Math.max(a, b));
    s.watermarkMs = s.watermarkMs === null ? max : Math.max(s.watermarkMs, max);
    s.activeAtMs = nowMs;
    if (s.idle) {
      s.idle = false;
      this.#onIdleChange({ partition, watermarkMs: s.watermarkMs, idle: false });
    }
  }

  /**
   * What to write at `nowMs`, one report per owned source that has something to say (a
   * watermark, or idleness); turns sources idle whose time has come. A source that is
   * active but has no watermark yet is left out: readers wait for it.
   */
  report(nowMs: number): SourceReport[] {
    const reports: SourceReport[] = [];
    for (const partition of this.owned()) {
      const s = this.#sources.get(partition)!;
      if (!s.idle && s.batchesInHand === 0 && nowMs - s.activeAtMs >= this.#idleAfterMs) {
        s.idle = true;
        this.#onIdleChange({ partition, watermarkMs: s.watermarkMs, idle: true });
      }
      if (s.idle || s.watermarkMs !== null) {
        reports.push({ partition, watermarkMs: s.watermarkMs, idle: s.idle });
      }
    }
    return reports;
  }
}
