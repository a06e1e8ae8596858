/**
 * The hottest keys by recent event rate, in bounded memory: a space-saving top-K counter
 * (Metwally et al.) over exponentially decayed counts.
 *
 * At most `capacity` keys are tracked. A new key takes the slot of the coldest tracked one
 * and inherits its count as an error bound, so a key that is truly among the top K is never
 * missed, and its estimate is high by at most `error`. Counts decay with a half-life: for a
 * key receiving r events/s steadily, the decayed count tends to r x tau (tau = half-life /
 * ln 2), so `rate_per_s = count / tau`.
 *
 * Decay without touching every entry: weights are stored scaled by e^((t - t0) / tau) (a
 * forward-decay landmark t0), so one event adds e^((now - t0) / tau) and the order of the
 * entries never changes with time; a min-heap on the scaled weight finds the coldest slot in
 * O(log K). Weights are rescaled to a new landmark before they could overflow.
 */

export interface HotKey {
  kind: string;
  key: string;
  /** Estimated events per second (decayed), an upper bound. */
  rate_per_s: number;
  /** How much of `rate_per_s` may come from the slot's previous keys (0: exact). */
  error_per_s: number;
}

export interface HotKeysOptions {
  /** Keys tracked at most (K). */
  capacity?: number;
  /** Time for a count to halve without new events. */
  halfLifeMs?: number;
  now?: () => number;
}

interface Entry {
  kind: string;
  key: string;
  /** Scaled decayed count. */
  weight: number;
  /** Scaled over-estimate inherited from the evicted entry. */
  error: number;
  index: number;
}

/** Rescale once the scale factor reaches e^RESCALE_AT (far below Number.MAX_VALUE). */
const RESCALE_AT = 200;

export class HotKeys {
  readonly #capacity: number;
  readonly #tauMs: number;
  readonly #now: () => number;
  /** Tracked entries by kind, then key (no key string built per event). */
  readonly #entries = new Map<string, Map<string, Entry>>();
  readonly #heap: Entry[] = [];
  #landmark: number;
  #lastNow: number;

  constructor(options: HotKeysOptions = {}) {
    const capacity = options.capacity ?? 1000;
    const halfLifeMs = options.halfLifeMs ?? 60_000;
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Cannot create HotKeys: capacity must be an integer >= 1, got ${capacity}`,
      );
    }
    if (!(halfLifeMs > 0) || !Number.isFinite(halfLifeMs)) {
      throw new RangeError(`Cannot create HotKeys: halfLifeMs must be > 0, got ${halfLifeMs}`);
    }
    this.#capacity = capacity;
    this.#tauMs = halfLifeMs / Math.LN2;
    this.#now = options.now ?? Date.now;
    this.#landmark = this.#now();
    this.#lastNow = this.#landmark;
  }

  get size(): number {
    return this.#heap.length;
  }

  get capacity(): number {
    return this.#capacity;
  }

  /** Counts `count` events for a key (the actor consumer calls it per key per batch). */
  record(kind: string, key: string, count = 1): void {
    if (!(count > 0)) return;
    const weight = count * this.#scale();
    const ofKind = this.#entriesOf(kind);
    const found = ofKind.get(key);
    if (found) {
      found.weight += weight;
      this.#siftDown(found.index);
      return;
    }
    if (this.#heap.length < this.#capacity) {
      const entry: Entry = { kind, key, weight, error: 0, index: this.#heap.length };
      this.#heap.push(entry);
      ofKind.set(key, entry);
      this.#siftUp(entry.index);
      return;
    }
    // Space saving: the coldest slot goes to the new key, which inherits its count as error.
    const coldest = this.#heap[0]!;
    this.#entries.get(coldest.kind)!.delete(coldest.key);
    coldest.kind = kind;
    coldest.key = key;
    coldest.error = coldest.weight;
    coldest.weight += weight;
    ofKind.set(key, coldest);
    this.#siftDown(0);
  }

  /** The `limit` hottest keys, hottest first; keys whose rate decayed below `minRate` are left out. */
  top(limit: number, options: { minRatePerS?: number } = {}): HotKey[] {
    if (!Number.isInteger(limit) || limit < 1) {
      throw new RangeError(`Cannot list hot keys: limit must be an integer >= 1, got ${limit}`);
    }
    const toRate = 1000 / (this.#scale() * this.#tauMs);
    const minRate = options.minRatePerS ?? 1e-6;
    return [...this.#heap]
      .sort((a, b) => b.weight - a.weight || byKindThenKey(a, b))
      .slice(0, limit)
      .map((e) => ({
        kind: e.kind,
        key: e.key,
        rate_per_s: e.weight * toRate,
        error_per_s: e.error * toRate,
      }))
      .filter((h) => h.rate_per_s >= minRate);
  }

  #entriesOf(kind: string): Map<string, Entry> {
    let entries = this.#entries.get(kind);
    if (!entries) {
      entries = new Map();
      this.#entries.set(kind, entries);
    }
    return entries;
  }

  /** The scale of one event now; rescales every weight when it grows too large. */
  #scale(): number {
    const now = Math.max(this.#now(), this.#lastNow); // a clock stepping back must not inflate
    this.#lastNow = now;
    const exponent = (now - this.#landmark) / this.#tauMs;
    if (exponent < RESCALE_AT) return Math.exp(exponent);
    const factor = Math.exp(-exponent);
    for (const e of this.#heap) {
      e.weight *= factor;
      e.error *= factor;
    }
    this.#landmark = now;
    return 1;
  }

  #siftUp(index: number): void {
    const heap = this.#heap;
    let i = index;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.weight <= heap[i]!.weight) break;
      this.#swap(i, parent);
      i = parent;
    }
  }

  #siftDown(index: number): void {
    const heap = this.#heap;
    let i = index;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && heap[left]!.weight < heap[smallest]!.weight) smallest = left;
      if (right < heap.length && heap[right]!.weight < heap[smallest]!.weight) smallest = right;
      if (smallest === i) return;
      this.#swap(i, smallest);
      i = smallest;
    }
  }

  #swap(a: number, b: number): void {
    const heap = this.#heap;
    const ea = heap[a]!;
    const eb = heap[b]!;
    heap[a] = eb;
    heap[b] = ea;
    eb.index = a;
    ea.index = b;
  }
}

function byKindThenKey(a: Entry, b: Entry): number {
  if (a.kind !== b.kind) return a.kind < b.kind ? -1 : 1;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}
