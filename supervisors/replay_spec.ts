/**
 * What a replay is asked for (a kind, a key range or prefix, a start time, dry run or not)
 * and how far it got: shared by the jobs that run replays, the owner that swaps rebuilt
 * actors in, and the worker thread that rebuilds them.
 */

export interface ReplaySpec {
  kind: string;
  fromKey?: string;
  toKey?: string;
  prefix?: string;
  fromTimeMs: number;
  dryRun: boolean;
}

export interface ReplayProgress {
  /** Log records read so far, of the total between each partition's start and its end. */
  recordsRead: number;
  recordsTotal: number;
  events: number;
  keys: number;
}

/** The keys a replay covers: an inclusive range or a prefix. */
export function keyMatcher(spec: Pick<ReplaySpec, "fromKey" | "toKey" | "prefix">) {
  if (spec.prefix !== undefined) {
    const prefix = spec.prefix;
    return (key: string) => key.startsWith(prefix);
  }
  const from = spec.fromKey ?? "";
  const to = spec.toKey;
  return (key: string) => key >= from && (to === undefined || key <= to);
}

/** The key range a spec covers as [from, to] (to undefined: unbounded), for overlap tests. */
export function keyRange(spec: Pick<ReplaySpec, "fromKey" | "toKey" | "prefix">) {
  if (spec.prefix !== undefined) return { from: spec.prefix, to: `${spec.prefix}\uffff` };
  return { from: spec.fromKey ?? "", to: spec.toKey };
}

/** Two specs of the same kind whose key ranges share a key. */
export function overlaps(a: ReplaySpec, b: ReplaySpec): boolean {
  if (a.kind !== b.kind) return false;
  const x = keyRange(a);
  const y = keyRange(b);
  return (y.to === undefined || x.from <= y.to) && (x.to === undefined || y.from <= x.to);
}
