/**
 * The event-time clock of one normalized partition, computed only from the watermark
 * records in it (CONTRACT.md, "Event time"): the greatest value so far of the minimum, over
 * the source partitions that are not idle, of their latest watermark. Undefined until every
 * source partition has reported; never moves back; kept while every source is idle.
 */
import type { ClockState } from "../messages/partition_state.ts";
import type { WatermarkRecord } from "../messages/watermark.ts";

/** What an instrument is judged by at one offset of its partition. */
export interface EventClock {
  /** Events older than clock - lateness are late; bars end + lateness <= clock are final. */
  clockMs: number | null;
  /**
   * Set only while every source is idle: the smallest `wall_ms` of their latest records.
   * Bars whose end + lateness is below it are final (quiet close).
   */
  quietMs: number | null;
}

export const UNDEFINED_CLOCK: EventClock = Object.freeze({ clockMs: null, quietMs: null });

export function emptyClockState(): ClockState {
  return { sources: {}, source_partitions: {}, clock_ms: null };
}

function sourceId(topic: string, partition: number): string {
  return `${topic}:${partition}`;
}

/** True once a record from every partition of every known source topic has arrived. */
function allSourcesReported(state: ClockState): boolean {
  for (const [topic, count] of Object.entries(state.source_partitions)) {
    for (let p = 0; p < count; p++) {
      if (!Object.hasOwn(state.sources, sourceId(topic, p))) return false;
    }
  }
  return Object.keys(state.source_partitions).length > 0;
}

/** Applies one watermark record in partition order; the state is updated in place. */
export function applyWatermark(state: ClockState, record: WatermarkRecord): void {
  state.sources[sourceId(record.source_topic, record.source_partition)] = {
    watermark_ms: record.watermark_ms,
    idle: record.idle,
    wall_ms: record.wall_ms,
  };
  const known = state.source_partitions[record.source_topic] ?? 0;
  if (record.source_partitions > known) {
    state.source_partitions[record.source_topic] = record.source_partitions;
  }
  if (!allSourcesReported(state)) return;
  let min: number | null = null;
  let active = 0;
  for (const mark of Object.values(state.sources)) {
    if (mark.idle) continue;
    active++;
    // An active source without a watermark holds the clock.
    if (mark.watermark_ms === null) return;
    if (min === null || mark.watermark_ms < min) min = mark.watermark_ms;
  }
  if (active === 0 || min === null) return;
  if (state.clock_ms === null || min > state.clock_ms) state.clock_ms = min;
}

/** The clock the partition's events are judged by right now. */
export function currentClock(state: ClockState): EventClock {
  if (state.clock_ms === null && !allSourcesReported(state)) return UNDEFINED_CLOCK;
  let quiet: number | null = null;
  if (allSourcesReported(state)) {
    for (const mark of Object.values(state.sources)) {
      if (!mark.idle) {
        quiet = null;
        break;
      }
      if (quiet === null || mark.wall_ms < quiet) quiet = mark.wall_ms;
    }
  }
  return { clockMs: state.clock_ms, quietMs: quiet };
}
