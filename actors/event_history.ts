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
 *
 * Snapshots store it by column too (`StoredHistory`): as objects, the field names repeated
 * in every entry were 60% of an instrument's stored snapshot.
 */
import {
  historyEntries,
  type HistoryEntry as Summary,
  type PersistedHistory,
  type StoredHistory,
} from "../messages/persisted_actor.ts";

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

  constructor(capacity: number, stored: PersistedHistory = []) {
    this.capacity = Math.max(0, Math.floor(capacity));
    if (!Array.isArray(stored) && this.#loadColumns(stored)) return;
    const entries = historyEntries(stored);
    for (const entry of entries.slice(Math.max(0, entries.length - this.capacity))) {
      this.push(entry);
    }
  }

  /**
   * Starts from stored columns without an object per entry (a new owner revives thousands of
   * actors at once); false when a column mixes numbers with other values: then the entries
   * are pushed one by one, which keeps them as objects.
   */
  #loadColumns({ fields, columns }: StoredHistory): boolean {
    if (this.capacity === 0 || fields.length === 0) return true;
    const numeric = columns.map((c) => c.every((v) => typeof v === "number"));
    const mixed = columns.some((c, i) => !numeric[i] && c.some((v) => typeof v === "number"));
    if (mixed) return false;
    this.#layOut([...fields], numeric);
    const length = columns[0]!.length;
    let n = 0;
    let o = 0;
    for (let k = Math.max(0, length - this.capacity); k < length; k++) {
      for (let i = 0; i < fields.length; i++) {
        if (numeric[i]) this.#numbers[n++] = columns[i]![k] as number;
        else this.#others[o++] = columns[i]![k];
      }
      this.#length++;
    }
    return true;
  }

  push(summary: Summary): void {
    if (this.capacity === 0) return;
    if (this.#objects === null && this.#fields === null) {
      const fields = Object.keys(summary);
      this.#layOut(fields, fields.map((f) => typeof summary[f] === "number"));
    }
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
    return historyEntries(this.#columns());
  }

  /** The entries as a snapshot stores them: by column, or as objects once it holds those. */
  toStored(): PersistedHistory {
    if (this.#objects !== null) return [...this.#objects];
    return this.#fields === null ? [] : this.#columns();
  }

  /** The ring's entries by column, oldest first. */
  #columns(): StoredHistory {
    const fields = this.#fields ?? [];
    const columns: unknown[][] = fields.map(() => new Array(this.#length));
    const others = fields.length - this.#numericCount;
    for (let k = 0; k < this.#length; k++) {
      const slot = (this.#start + k) % this.capacity;
      let n = slot * this.#numericCount;
      let o = slot * others;
      for (let i = 0; i < fields.length; i++) {
        columns[i]![k] = this.#numeric[i] ? this.#numbers[n++] : this.#others[o++];
      }
    }
    return { fields: [...fields], columns };
  }

  clear(): void {
    this.#fields = null;
    this.#objects = null;
    this.#start = 0;
    this.#length = 0;
  }

  /** Allocates the columns: numbers in one Float64Array, the other fields in one array. */
  #layOut(fields: string[], numeric: boolean[]): void {
    this.#fields = fields;
    this.#numeric = numeric;
    this.#numericCount = numeric.filter(Boolean).length;
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
