/**
 * The instrument actor's aggregation logic as plain functions over a JSON-serialisable
 * context: bars per window, latest price, lateness, corrections and quiet close. No I/O and
 * no clock reads: the partition's event-time clock (actors/event_clock.ts) comes in with
 * every event and with CLOCK advances, so every decision follows the log alone.
 *
 * Versions are derived from the events applied, never from flush timing, so a rebuild
 * after a crash writes the same (version, content) pairs again.
 */
import type { NormalizedTick } from "../../../messages/normalized_tick.ts";
import type { EventClock } from "../../event_clock.ts";

export interface WindowSpec {
  name: string;
  ms: number;
}

export interface InstrumentParams {
  windows: WindowSpec[];
  allowedLatenessMs: number;
}

/** One bar under construction or final. `pv` is sum(price x size) for the VWAP. */
export interface BarState {
  start_ms: number;
  end_ms: number;
  open: number;
  open_t: number;
  open_id: string;
  close: number;
  close_t: number;
  close_id: string;
  high: number;
  low: number;
  volume: number;
  pv: number;
  count: number;
  final: boolean;
  /** Changed since the last flush (absent in snapshots stored before it existed). */
  changed?: boolean;
}

export interface LatestState {
  price: number;
  size: number;
  event_time_ms: number;
  event_id: string;
}

/** An event applied to an instrument: the canonical tick and its partition's clock there. */
export interface TickInput {
  tick: NormalizedTick;
  clock: EventClock;
}

export type Rejection = { index: number; reason: "late_event"; message: string };

/**
 * event_id -> event time of the events still within reach (dedup across redeliveries). A
 * Map, not a plain object: inserting thousands of fresh string keys into an object turns it
 * into a slow dictionary, and every snapshot walked and serialised it key by key. Stored as
 * `[base, ids, offsets]` (times as offsets from the smallest, in two flat arrays); the plain
 * object `{ id: time }` of snapshots written before is still read (see `SeenIds.from`).
 */
export class SeenIds extends Map<string, number> {
  toJSON(): StoredSeen {
    const ids: string[] = new Array(this.size);
    const times: number[] = new Array(this.size);
    let base = Infinity;
    let i = 0;
    for (const [id, t] of this) {
      ids[i] = id;
      times[i++] = t;
      if (t < base) base = t;
    }
    if (i === 0) return [0, [], []];
    for (let j = 0; j < i; j++) times[j]! -= base;
    return [base, ids, times];
  }

  /** The live form of a stored `seen`: this class, its stored array, or the older object. */
  static from(stored: unknown): SeenIds {
    if (stored instanceof SeenIds) return stored;
    const seen = new SeenIds();
    if (stored instanceof Map) {
      for (const [id, t] of stored) seen.set(id, t); // a structured clone of one
    } else if (Array.isArray(stored)) {
      const [base, ids, times] = stored as StoredSeen;
      for (let i = 0; i < ids.length; i++) seen.set(ids[i]!, base + times[i]!);
    } else if (stored !== null && typeof stored === "object") {
      for (const [id, t] of Object.entries(stored as Record<string, number>)) seen.set(id, t);
    }
    return seen;
  }
}

/** How `seen` is stored in a snapshot: smallest time, ids, and each id's time minus it. */
export type StoredSeen = [base: number, ids: string[], offsets: number[]];

export interface InstrumentContext {
  instrumentId: string;
  params: InstrumentParams;
  /** Added to every version so a reset or replay keeps versions monotonic. */
  versionBase: number;
  /** Events counted (each event_id once). */
  applied: number;
  /** The greatest partition clock this instrument was judged by (null: none defined yet). */
  clockMs: number | null;
  latest: LatestState | null;
  /** Bars by resolution name, ordered by start_ms; final bars leave once past lateness. */
  bars: Record<string, BarState[]>;
  /**
   * Bars not yet final, by resolution: closing walks back from the newest bar only until it
   * has seen them all, so a long unflushed history costs nothing per event. Snapshots stored
   * before it existed lack it; it is counted again on first use.
   */
  openBars?: Record<string, number>;
  /** event_id -> event time, for events still within reach (dedup across redeliveries). */
  seen: SeenIds;
  seenCount: number;
  /** Prune `seen` when it reaches this size (doubles with the live set: amortised O(1)). */
  seenPruneAt: number;
  /** The latest price changed since the last flush (changed bars carry `changed`). */
  latestChanged: boolean;
  /** A bar turned final since the last flush (the runtime flushes early then). */
  closedSinceFlush: boolean;
  duplicates: number;
}

export function initialInstrumentContext(
  instrumentId: string,
  params: InstrumentParams,
  versionBase = 0,
): InstrumentContext {
  return {
    instrumentId,
    params,
    versionBase,
    applied: 0,
    clockMs: null,
    latest: null,
    bars: Object.fromEntries(params.windows.map((w) => [w.name, []])),
    openBars: Object.fromEntries(params.windows.map((w) => [w.name, 0])),
    seen: new SeenIds(),
    seenCount: 0,
    seenPruneAt: MIN_SEEN_PRUNE,
    latestChanged: false,
    closedSinceFlush: false,
    duplicates: 0,
  };
}

/** Bar version: grows with every counted event and once more when the bar turns final. */
export function barVersion(ctx: InstrumentContext, bar: BarState): number {
  return ctx.versionBase + 2 * bar.count + (bar.final ? 1 : 0);
}

export function latestVersion(ctx: InstrumentContext): number {
  return ctx.versionBase + ctx.applied;
}

/** (t, id) ordering of CONTRACT.md: event time, then event_id. */
function before(t1: number, id1: string, t2: number, id2: string): boolean {
  return t1 < t2 || (t1 === t2 && id1 < id2);
}

function windowStart(t: number, ms: number): number {
  return Math.floor(t / ms) * ms;
}

/** The open bars of a resolution (counted from its list for an older snapshot). */
function openCount(ctx: InstrumentContext, resolution: string): number {
  const counts = ctx.openBars ?? (ctx.openBars = {});
  let n = counts[resolution];
  if (n === undefined) {
    n = 0;
    for (const bar of ctx.bars[resolution] ?? []) if (!bar.final) n++;
    counts[resolution] = n;
  }
  return n;
}

function addToBar(ctx: InstrumentContext, spec: WindowSpec, tick: NormalizedTick): void {
  const start = windowStart(tick.event_time_ms, spec.ms);
  const list = ctx.bars[spec.name] ?? (ctx.bars[spec.name] = []);
  let i = list.length - 1;
  while (i >= 0 && list[i]!.start_ms > start) i--;
  const t = tick.event_time_ms;
  const id = tick.event_id;
  if (i >= 0 && list[i]!.start_ms === start) {
    const bar = list[i]!;
    if (before(t, id, bar.open_t, bar.open_id)) {
      bar.open = tick.price;
      bar.open_t = t;
      bar.open_id = id;
    }
    if (before(bar.close_t, bar.close_id, t, id)) {
      bar.close = tick.price;
      bar.close_t = t;
      bar.close_id = id;
    }
    if (tick.price > bar.high) bar.high = tick.price;
    if (tick.price < bar.low) bar.low = tick.price;
    bar.volume += tick.size;
    bar.pv += tick.price * tick.size;
    bar.count += 1;
    bar.changed = true;
  } else {
    ctx.openBars![spec.name] = openCount(ctx, spec.name) + 1;
    list.splice(i + 1, 0, {
      start_ms: start,
      end_ms: start + spec.ms,
      open: tick.price,
      open_t: t,
      open_id: id,
      close: tick.price,
      close_t: t,
      close_id: id,
      high: tick.price,
      low: tick.price,
      volume: tick.size,
      pv: tick.price * tick.size,
      count: 1,
      final: false,
      changed: true,
    });
  }
}

/**
 * Finalises bars whose end + lateness the clock has reached (or, while every source is
 * idle, is below the quiet time), then drops final bars that no accepted event can reach
 * any more (keeping each resolution's newest bar, which backs `projection:bar:*`, and any
 * bar still waiting to be flushed).
 */
function closeBars(ctx: InstrumentContext, clock: EventClock): void {
  const lateness = ctx.params.allowedLatenessMs;
  const clockMs = clock.clockMs ?? -Infinity;
  const quietMs = clock.quietMs ?? -Infinity;
  for (const spec of ctx.params.windows) {
    const list = ctx.bars[spec.name];
    if (!list) continue;
    // Only open bars can close: walk back from the newest until every open bar was seen.
    let unseen = openCount(ctx, spec.name);
    for (let i = list.length - 1; i >= 0 && unseen > 0; i--) {
      const bar = list[i]!;
      if (bar.final) continue;
      unseen--;
      const due = bar.end_ms + lateness;
      if (due <= clockMs || due < quietMs) {
        bar.final = true;
        bar.changed = true;
        ctx.openBars![spec.name]!--;
        ctx.closedSinceFlush = true;
      }
    }
    const reach = (ctx.clockMs ?? -Infinity) - lateness;
    while (
      list.length > 1 && list[0]!.final && list[0]!.end_ms <= reach && !list[0]!.changed
    ) list.shift();
  }
}

/**
 * Moves the instrument to its partition's clock: closes what the clock or quiet close
 * finalises. Cheap when nothing moved (the common case inside a batch).
 */
export function advanceClock(ctx: InstrumentContext, clock: EventClock): void {
  const moved = clock.clockMs !== null && (ctx.clockMs === null || clock.clockMs > ctx.clockMs);
  if (moved) ctx.clockMs = clock.clockMs;
  if (moved || clock.quietMs !== null) closeBars(ctx, clock);
}

/** The context's `seen` in its live form (a restored context may hold the stored one). */
function seenOf(ctx: InstrumentContext): SeenIds {
  const seen = ctx.seen;
  return seen instanceof SeenIds ? seen : (ctx.seen = SeenIds.from(seen));
}

/**
 * `seen` is pruned on insert once it holds this many ids (then at twice what it keeps), and
 * at every collect: a key keeps few more ids than its events within the lateness, in memory
 * and in its snapshot.
 */
const MIN_SEEN_PRUNE = 64;

/** A prune ends after this many ids in a row within reach. */
const PRUNE_ENDS_AFTER = 32;

/** Forgets event ids that can no longer be accepted (older than clock - lateness). */
function pruneSeen(ctx: InstrumentContext): void {
  if (ctx.clockMs === null) return;
  const horizon = ctx.clockMs - ctx.params.allowedLatenessMs;
  const seen = seenOf(ctx);
  // Ids come nearly in event-time order and a Map keeps insertion order: the walk from the
  // oldest insert deletes what is out of reach and ends after a run of ids within it, so it
  // reads few of the ids kept. One id ahead of the rest does not end it; one that came out of
  // order behind such a run stays until a later walk gets there: a kept id only costs room.
  let withinReach = 0;
  for (const [id, t] of seen) {
    if (t < horizon) {
      seen.delete(id);
      withinReach = 0;
    } else if (++withinReach === PRUNE_ENDS_AFTER) break;
  }
  ctx.seenCount = seen.size;
  ctx.seenPruneAt = Math.max(MIN_SEEN_PRUNE, 2 * seen.size);
}

/**
 * Applies a batch of ticks in order, each judged by its partition's clock at its offset.
 * Duplicates (same event_id) are ignored; events older than clock - lateness are returned
 * as `late_event` and not applied. An event for a bar that quiet close made final is a
 * correction: the bar stays final with a higher version.
 */
export function applyTicks(ctx: InstrumentContext, inputs: readonly TickInput[]): Rejection[] {
  const rejected: Rejection[] = [];
  const lateness = ctx.params.allowedLatenessMs;
  const seen = seenOf(ctx);
  for (let index = 0; index < inputs.length; index++) {
    const { tick, clock } = inputs[index]!;
    advanceClock(ctx, clock);
    const t = tick.event_time_ms;
    if (seen.has(tick.event_id)) {
      ctx.duplicates++;
      continue;
    }
    if (ctx.clockMs !== null && t < ctx.clockMs - lateness) {
      rejected.push({
        index,
        reason: "late_event",
        message: `event time ${t} is older than clock ${ctx.clockMs} - lateness ${lateness}`,
      });
      continue;
    }
    seen.set(tick.event_id, t);
    ctx.seenCount++;
    ctx.applied++;
    for (const spec of ctx.params.windows) addToBar(ctx, spec, tick);
    const latest = ctx.latest;
    if (latest === null || before(latest.event_time_ms, latest.event_id, t, tick.event_id)) {
      ctx.latest = {
        price: tick.price,
        size: tick.size,
        event_time_ms: t,
        event_id: tick.event_id,
      };
    }
    ctx.latestChanged = true;
    // While every source is idle, a bar this event opened may already be past quiet close.
    if (clock.quietMs !== null) closeBars(ctx, clock);
  }
  if (ctx.seenCount >= ctx.seenPruneAt) pruneSeen(ctx);
  return rejected;
}

/**
 * The clock value at which the next open bar closes (end + lateness of the earliest open
 * bar), or null when every bar is final. The partition wakes the actor when it gets there.
 */
export function nextCloseAt(ctx: InstrumentContext): number | null {
  let earliestEnd: number | null = null;
  for (const [resolution, list] of Object.entries(ctx.bars)) {
    let unseen = openCount(ctx, resolution);
    for (let i = list.length - 1; i >= 0 && unseen > 0; i--) {
      const bar = list[i]!;
      if (bar.final) continue;
      unseen--;
      if (earliestEnd === null || bar.end_ms < earliestEnd) earliestEnd = bar.end_ms;
    }
  }
  return earliestEnd === null ? null : earliestEnd + ctx.params.allowedLatenessMs;
}

/** A bar changed since the last flush, with its key `${resolution}|${start_ms}`. */
export interface ChangedBar {
  key: string;
  resolution: string;
  bar: BarState;
}

/**
 * Takes (and clears) the change markers: the runtime flushes what they name. Also forgets
 * the event ids past reach, so the snapshot that follows stores only those within it.
 */
export function takeChanges(ctx: InstrumentContext): { bars: ChangedBar[]; latest: boolean } {
  const bars: ChangedBar[] = [];
  for (const [resolution, list] of Object.entries(ctx.bars)) {
    for (const bar of list) {
      if (!bar.changed) continue;
      bar.changed = false;
      bars.push({ key: `${resolution}|${bar.start_ms}`, resolution, bar });
    }
  }
  const changes = { bars, latest: ctx.latestChanged };
  ctx.latestChanged = false;
  ctx.closedSinceFlush = false;
  // A snapshot follows a collect: it then stores only the ids still within reach.
  if (ctx.seenCount > 0) pruneSeen(ctx);
  return changes;
}

export function allBarsFinal(ctx: InstrumentContext): boolean {
  return Object.keys(ctx.bars).every((resolution) => openCount(ctx, resolution) === 0);
}

export function barVwap(bar: BarState): number {
  return bar.volume === 0 ? 0 : bar.pv / bar.volume;
}

export function findBar(ctx: InstrumentContext, key: string): BarState | undefined {
  const [resolution, start] = key.split("|");
  return ctx.bars[resolution!]?.find((b) => b.start_ms === Number(start));
}
