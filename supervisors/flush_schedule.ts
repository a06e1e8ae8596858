/**
 * When each owned partition flushes and snapshots: once per interval, each at its own phase of
 * it, so a periodic flush handles a few partitions' changed actors rather than every actor of
 * the node at once. One burst a second of ~5k changed actors (collect, projection JSON, the
 * sinks' encoding) was what every live event arriving meanwhile waited behind.
 */

/**
 * Where in an interval a partition's flushes and snapshots fall, in [0, 1): spread evenly for
 * any set of partition numbers (the golden-ratio sequence).
 */
export function schedulePhase(partition: number): number {
  return (partition * 0.6180339887498949) % 1;
}

/** The refresh slot `at` falls in for a partition: a new slot starts at its phase of each interval. */
function refreshSlot(partition: number, at: number, intervalMs: number): number {
  return Math.floor(at / intervalMs - schedulePhase(partition));
}

/**
 * The periodic refresh of projections: a partition is due once its current slot is past the
 * one it was last flushed in. Flushes outside the schedule (a window closed, a reset, a stop)
 * count as its flush for their slot and leave its phase where it is.
 */
export class RefreshSchedule<P extends { partition: number }> {
  readonly #intervalMs: number;
  /** Never wakes more often than this: with many partitions, a flush takes several. */
  readonly #minGapMs: number;
  readonly #flushedSlot = new WeakMap<P, number>();

  constructor(intervalMs: number) {
    this.#intervalMs = Math.max(1, intervalMs);
    this.#minGapMs = this.#intervalMs / 16;
  }

  due(p: P, now: number): boolean {
    const last = this.#flushedSlot.get(p);
    return last === undefined || refreshSlot(p.partition, now, this.#intervalMs) > last;
  }

  flushed(p: P, now: number): void {
    this.#flushedSlot.set(p, refreshSlot(p.partition, now, this.#intervalMs));
  }

  /** How long the periodic flush can sleep: until the next partition's slot starts. */
  sleepMs(partitions: Iterable<P>, now: number): number {
    let next = now + this.#intervalMs;
    for (const p of partitions) {
      const last = this.#flushedSlot.get(p);
      if (last === undefined) return this.#minGapMs;
      next = Math.min(next, (last + 1 + schedulePhase(p.partition)) * this.#intervalMs);
    }
    return Math.max(this.#minGapMs, next - now);
  }
}
