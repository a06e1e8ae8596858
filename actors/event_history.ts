/**
 * A key's last events, as its operators see them (`last_events`): a bounded ring of the
 * summaries its kind writes, stored by column. Kept as objects, each summary cost an object
 * and a heap number per non-integer field, ~80 objects per actor: most of a live actor's
 * objects, for the garbage collector to mark at every major GC. Numeric columns live in one
 * Float64Array, the others (event ids) in one array.
 *
 * The columns come from the first summary. A summary of another shape (a kind changed its
 * summary between versions, a persisted history from before) turns the ring into plain
 * objects from then on: nothing is lost, only the compact form.
 */
type Summary = Record<string, unknown>;

export class EventHistory {
  readonly capacity: number;
  /** Column names, and for each whether it is numeric; null until the first push. */
  #fields: string[] | null = null;
  #numeric: boolean[] = [];
  #numericCount = 0;
  #numbers = new Float64Array(0);
  #others: unknown[] = [];
  /** The fallback: summaries as given, oldest first. */
  #objects: Summary[] | null = null;
  /** Ring position of the oldest entry, and how many there are. */
  #start = 0;
  #length = 0;

  constructor(capacity: number, entries: readonly Summary[] = []) {
    this.capacity = Math.max(0, Math.floor(capacity));
    for (const entry of entries.slice(Math.max(0, entries.length - this.capacity))) {
      this.push(entry);
    }
  }

  push(summary: Summary): void {
    if (this.capacity === 0) return;
    if (this.#objects === null && this.#fields === null) this.#layOut(summary);
    if (this.#objects === null && !this.#fits(summary)) this.#objects = this.toArray();
    if (this.#objects !== null) {
      this.#objects.push(summary);
      if (this.#objects.length > this.capacity) this.#objects.shift();
      return;
    }
    let slot = this.#start;
    if (this.#length < this.capacity) {
      slot = (this.#start + this.#length) % this.capacity;
      this.#length++;
    } else {
      this.#start = (this.#start + 1) % this.capacity; // the oldest is overwritten
    }
    const fields = this.#fields!;
    let n = slot * this.#numericCount;
    let o = slot * (fields.length - this.#numericCount);
    for (let i = 0; i < fields.length; i++) {
      const value = summary[fields[i]!];
      if (this.#numeric[i]) this.#numbers[n++] = value as number;
      else this.#others[o++] = value;
    }
  }

  /** The entries, oldest first, as the summaries they were pushed as. */
  toArray(): Summary[] {
    if (this.#objects !== null) return [...this.#objects];
    const fields = this.#fields;
    const out: Summary[] = new Array(this.#length);
    if (fields === null) return out;
    for (let k = 0; k < this.#length; k++) {
      const slot = (this.#start + k) % this.capacity;
      let n = slot * this.#numericCount;
      let o = slot * (fields.length - this.#numericCount);
      const entry: Summary = {};
      for (let i = 0; i < fields.length; i++) {
        entry[fields[i]!] = this.#numeric[i] ? this.#numbers[n++] : this.#others[o++];
      }
      out[k] = entry;
    }
    return out;
  }

  clear(): void {
    this.#fields = null;
    this.#objects = null;
    this.#start = 0;
    this.#length = 0;
  }

  #layOut(first: Summary): void {
    const fields = Object.keys(first);
    this.#fields = fields;
    this.#numeric = fields.map((f) => typeof first[f] === "number");
    this.#numericCount = this.#numeric.filter(Boolean).length;
    this.#numbers = new Float64Array(this.capacity * this.#numericCount);
    this.#others = new Array(this.capacity * (fields.length - this.#numericCount));
  }

  /** Whether `summary` has exactly the columns, with numbers where they are numeric. */
  #fits(summary: Summary): boolean {
    const fields = this.#fields!;
    // Summaries are plain objects: `in` and for-in see their own keys only.
    let count = 0;
    for (const _ in summary) count++;
    if (count !== fields.length) return false;
    for (let i = 0; i < fields.length; i++) {
      const value = summary[fields[i]!];
      if (typeof value === "number") {
        if (!this.#numeric[i]) return false;
      } else if (this.#numeric[i] || (value === undefined && !(fields[i]! in summary))) {
        return false;
      }
    }
    return true;
  }
}
