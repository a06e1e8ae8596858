/**
 * The rebuild of a replay: reads each held partition of a kind from its first retained record
 * to the offset it had applied when the hold began, and feeds the matching keys' events, each
 * with the partition's clock at its offset as the live run judged it, into fresh actors. Final
 * bars are written as it goes; what it returns is each rebuilt key's persisted state and its
 * writes still to come, for the partition's owner to swap in (supervisors/replay.ts).
 *
 * It runs in a worker thread of its own (supervisors/replay_worker.ts): its decoding, actors
 * and garbage stay off the thread that serves the live keys. It knows nothing of that thread
 * but what `RebuildHost` gives it.
 */
import type { Kafka, KafkaMessage } from "kafkajs";
import type { ActorOutputs, KeyedEvent } from "../actors/actor_kinds.ts";
import { applyWatermark, currentClock, type EventClock } from "../actors/event_clock.ts";
import { KeyActor } from "../actors/key_actor.ts";
import { type ActorKindDefinition, kindSettings } from "../actors/kinds/kind.ts";
import { kindOf } from "../actors/kinds/registry.ts";
import type { Config } from "../config/config.ts";
import { decodeJson } from "../messages/decode.ts";
import type { ClockState } from "../messages/partition_state.ts";
import type { PersistedActor } from "../messages/persisted_actor.ts";
import { isControlRecord, WatermarkRecord } from "../messages/watermark.ts";
import { sleep, yieldToLoop } from "../timing/sleep.ts";
import { keyMatcher, type ReplayProgress, type ReplaySpec } from "./replay_spec.ts";

/** One held partition to read: [from, end] and the clock its records before `from` built. */
export interface PartitionToRebuild {
  partition: number;
  from: number;
  end: number;
  clock: ClockState;
  /** The last offset `clock` includes (watermark records up to it are skipped). */
  clockIncludes: number;
  /** The clock at `end`: the owner's at the hold (replaced by the rebuilt one once read). */
  clockAtEnd: EventClock;
}

export interface RebuildRequest {
  topic: string;
  /** Every partition of the topic (those not read are paused). */
  topicPartitions: number[];
  spec: ReplaySpec;
  partitions: PartitionToRebuild[];
}

/** A rebuilt key: its state, the version base its writes started from, its writes to come. */
export interface RebuiltKey {
  key: string;
  base: number;
  persisted: PersistedActor;
  /** Its writes not yet made (open bars, projections), filtered by the replay's `from`. */
  outputs: ActorOutputs;
}

export interface RebuildResult {
  partitions: { partition: number; keys: RebuiltKey[] }[];
  events: number;
}

/** What a rebuild asks of the node that holds the partitions. */
export interface RebuildHost {
  config: Config;
  kafka: Kafka;
  /** The first version of each key's rebuilt writes: above everything stored or issued. */
  versionBases(partition: number, keys: string[]): Promise<Map<string, number>>;
  /** Writes final bars (gold rows and their messages) now. */
  writeSettled(outputs: ActorOutputs): Promise<void>;
  /** A count the owner bumps per live batch applied: the rebuild rests longer while it moves. */
  liveBatches(): number;
  onProgress(progress: ReplayProgress): void;
  signal?: AbortSignal;
}

/** Reading stops with an error when no record arrived for this long. */
const READ_STALL_MS = 120_000;

/**
 * Keeps the gold rows (and final-bar messages) a replay from a time writes again: those
 * whose time, in the kind's gold time column, is at or after `from`. Projections and what
 * carries no such time are always rewritten.
 */
export function filterBefore(out: ActorOutputs, from: number, timeColumn: string): ActorOutputs {
  if (from <= 0) return out;
  const keep = (row: Record<string, unknown>) => {
    const at = row[timeColumn];
    return typeof at !== "number" || at >= from;
  };
  return {
    projections: out.projections,
    barRows: out.barRows.filter(keep),
    curveRows: out.curveRows.filter(keep),
    messages: out.messages.filter((m) => keep(JSON.parse(m.value))),
  };
}

/**
 * A rebuilt key's writes, the newest per identity (one bar, one curve point, one projection,
 * one final-bar message): collecting after every fetched batch keeps the machine's change
 * list short (so the rebuild stays linear in the history) without writing a bar twice.
 */
class OutputsByIdentity {
  readonly #projections = new Map<string, ActorOutputs["projections"][number]>();
  readonly #barRows = new Map<string, Record<string, unknown>>();
  readonly #curveRows = new Map<string, Record<string, unknown>>();
  readonly #messages = new Map<string, ActorOutputs["messages"][number]>();

  add(out: ActorOutputs): void {
    for (const p of out.projections) this.#projections.set(p.key, p);
    for (const r of out.barRows) this.#barRows.set(`${r.resolution}|${r.start_ms}`, r);
    for (const r of out.curveRows) this.#curveRows.set(`${r.as_of}|${r.tenor}`, r);
    for (const m of out.messages) {
      const id = m.topic === "bars"
        ? (({ resolution, start_ms }) => `bars|${resolution}|${start_ms}`)(JSON.parse(m.value))
        : m.topic;
      // Re-inserted so the messages keep the order of their last change.
      this.#messages.delete(id);
      this.#messages.set(id, m);
    }
  }

  /**
   * Takes the final bars (rows and their messages): they are written as the rebuild goes. A
   * later correction of one adds it again, with a higher version, to be written again.
   */
  takeSettled(): { barRows: Record<string, unknown>[]; messages: ActorOutputs["messages"] } {
    const barRows: Record<string, unknown>[] = [];
    const messages: ActorOutputs["messages"] = [];
    for (const [id, row] of this.#barRows) {
      if (row.final !== 1) continue;
      barRows.push(row);
      this.#barRows.delete(id);
      const message = this.#messages.get(`bars|${id}`);
      if (message) {
        messages.push(message);
        this.#messages.delete(`bars|${id}`);
      }
    }
    return { barRows, messages };
  }

  outputs(): ActorOutputs {
    return {
      projections: [...this.#projections.values()],
      barRows: [...this.#barRows.values()],
      curveRows: [...this.#curveRows.values()],
      messages: [...this.#messages.values()],
    };
  }
}

/** Synchronous rebuild work between two yields to the event loop. */
const SLICE_MS = 5;

/**
 * A rebuild works at most about this long (wall time, fetch decode and writes included) before
 * it rests. On its own thread it no longer shares the live keys' event loop or heap, but it
 * still shares the machine's cores with that thread, the broker that serves its reads and the
 * ClickHouse that parses its rows.
 */
const WORK_MS = 20;
/**
 * Rest per ms worked: while live batches came during the last work stretch, the rebuild takes
 * about a quarter of a core (bench --scenario replay, 100 keys x 10k bars, 5k live events/s on
 * 2 cores: live p99 x1.47 and 85 s; at half a core x2.31 and 50 s); on a quiet node, four fifths.
 */
const REST_PER_MS_LIVE = 3;
const REST_PER_MS_QUIET = 0.25;

/**
 * Gives the loop back between fetched batches: a turn of the loop while the rebuild has worked
 * less than WORK_MS since its last rest, else a rest in proportion to the work (longer while
 * live traffic is applied). It rests only between batches, when a batch's records, events and
 * written rows are garbage already.
 */
class DutyCycle {
  #workingSince = performance.now();
  #liveSeen: number;

  constructor(readonly liveBatches: () => number, readonly signal?: AbortSignal) {
    this.#liveSeen = liveBatches();
  }

  async pause(): Promise<void> {
    const worked = performance.now() - this.#workingSince;
    if (worked < WORK_MS) return await yieldToLoop();
    const live = this.liveBatches();
    const restPerMs = live !== this.#liveSeen ? REST_PER_MS_LIVE : REST_PER_MS_QUIET;
    this.#liveSeen = live;
    await sleep(worked * restPerMs, this.signal);
    this.#workingSince = performance.now();
  }

  /** Rests (or, with a rate cap, waits) this long: the next work stretch starts after it. */
  async rest(ms: number): Promise<void> {
    await sleep(ms, this.signal);
    this.#workingSince = performance.now();
  }
}

/** Final bars written per chunk while a rebuild runs (bounded memory, small swap flush). */
const SETTLED_CHUNK = 1000;

/**
 * Writes the bars a rebuild has made final to ClickHouse and Kafka as it goes, instead of
 * carrying a whole history into the flush that swaps the actors in (a week of 1m bars for 100
 * keys is a million rows: one flush of them stalls the node past its group session). They
 * carry versions above everything stored, so they win, and writing one again is harmless.
 */
class SettledWriter {
  #rows: Record<string, unknown>[] = [];
  #messages: ActorOutputs["messages"] = [];

  constructor(
    readonly write: (outputs: ActorOutputs) => Promise<void>,
    readonly from: number,
    readonly timeColumn: string,
  ) {}

  add(settled: ReturnType<OutputsByIdentity["takeSettled"]>): void {
    for (const r of settled.barRows) this.#rows.push(r);
    for (const m of settled.messages) this.#messages.push(m);
  }

  /** Writes what is pending once a chunk is full (or now, with `all`). */
  async flush(all = false): Promise<void> {
    if (this.#rows.length === 0 || (!all && this.#rows.length < SETTLED_CHUNK)) return;
    const outputs = filterBefore(
      { projections: [], barRows: this.#rows, curveRows: [], messages: this.#messages },
      this.from,
      this.timeColumn,
    );
    this.#rows = [];
    this.#messages = [];
    await this.write(outputs);
  }
}

/** A partition being read: its range, its clock, and its rebuilt keys. */
interface Reading extends PartitionToRebuild {
  actors: Map<string, KeyActor<unknown>>;
  bases: Map<string, number>;
  outputs: Map<string, OutputsByIdentity>;
  done: boolean;
}

export async function rebuildFromLog(
  host: RebuildHost,
  request: RebuildRequest,
): Promise<RebuildResult> {
  const { spec } = request;
  const kind = kindOf(spec.kind);
  const settings = kindSettings(host.config);
  const adapter = kind.adapter(settings);
  const match = keyMatcher(spec);
  const from = kind.replacedFrom(spec.fromTimeMs, settings);
  const reading = new Map<number, Reading>(request.partitions.map((p) => [p.partition, {
    ...p,
    actors: new Map(),
    bases: new Map(),
    outputs: new Map(),
    done: p.end < p.from,
  }]));
  const progress: ReplayProgress = {
    recordsRead: 0,
    recordsTotal: request.partitions.reduce((n, p) => n + Math.max(0, p.end - p.from + 1), 0),
    events: 0,
    keys: 0,
  };
  host.onProgress({ ...progress });
  // A dry run writes nothing; its owner compares every rebuilt row at the end.
  const settled = spec.dryRun
    ? null
    : new SettledWriter((outputs) => host.writeSettled(outputs), from, kind.gold.timeColumn);

  /**
   * Applies one fetched batch's events to the rebuilt actors (creating those seen for the
   * first time, with versions above everything stored or issued for them), then takes their
   * writes, so each actor's change list stays short however long the history.
   */
  const applyBatch = async (r: Reading, byKey: Map<string, KeyedEvent<unknown>[]>) => {
    const fresh = [...byKey.keys()].filter((k) => !r.actors.has(k));
    if (fresh.length > 0) {
      const bases = await host.versionBases(r.partition, fresh);
      for (const key of fresh) {
        const base = bases.get(key);
        if (base === undefined) throw new Error(`no version base for ${key}`);
        r.bases.set(key, base);
        r.actors.set(
          key,
          new KeyActor(adapter, key, r.partition, {
            historySize: host.config.DATA_PROC_ACTOR_HISTORY,
            nowMs: Date.now(),
            versionBase: base,
          }),
        );
        r.outputs.set(key, new OutputsByIdentity());
      }
    }
    const now = Date.now();
    let sliceStarted = performance.now();
    for (const [key, events] of byKey) {
      const actor = r.actors.get(key)!;
      for (const e of events) actor.enqueue(e);
      actor.drain(now); // rejections were sent to the DLQ by the live run
      r.outputs.get(key)!.add(actor.collect());
      if (performance.now() - sliceStarted > SLICE_MS) {
        await yieldToLoop();
        sliceStarted = performance.now();
      }
    }
  };

  if ([...reading.values()].some((r) => !r.done)) {
    const select = { schema: kind.schema, keyOf: (v: unknown) => kind.keyOf(v), match };
    await readLog(host, request, select, reading, async (r, byKey, read) => {
      await applyBatch(r, byKey);
      if (settled) {
        for (const key of byKey.keys()) settled.add(r.outputs.get(key)!.takeSettled());
        await settled.flush();
      }
      progress.recordsRead += read;
      for (const events of byKey.values()) progress.events += events.length;
      progress.keys = [...reading.values()].reduce((n, x) => n + x.actors.size, 0);
      host.onProgress({ ...progress });
    });
    await settled?.flush(true);
  }
  host.onProgress({ ...progress, recordsRead: progress.recordsTotal });

  const result: RebuildResult = { partitions: [], events: progress.events };
  for (const r of reading.values()) {
    const keys: RebuiltKey[] = [];
    for (const [key, actor] of r.actors) {
      actor.advance(r.clockAtEnd);
      const acc = r.outputs.get(key)!;
      acc.add(actor.collect());
      keys.push({
        key,
        base: r.bases.get(key)!,
        persisted: actor.persist(Date.now()),
        outputs: filterBefore(acc.outputs(), from, kind.gold.timeColumn),
      });
      actor.stop();
    }
    result.partitions.push({ partition: r.partition, keys });
  }
  return result;
}

/**
 * Reads every unfinished partition of `reading` from its `from` to its `end` through a
 * consumer of its own (no group offsets), handing each fetched batch's matching events, by
 * key, to `apply`. Watermark records advance the partition's clock as the live run's did.
 */
async function readLog(
  host: RebuildHost,
  { topic, topicPartitions }: RebuildRequest,
  { schema, keyOf, match }: {
    schema: ActorKindDefinition["schema"];
    keyOf: (value: unknown) => string;
    match: (key: string) => boolean;
  },
  reading: Map<number, Reading>,
  apply: (r: Reading, byKey: Map<string, KeyedEvent<unknown>[]>, read: number) => Promise<void>,
): Promise<void> {
  const consumer = host.kafka.consumer({
    groupId: `${host.config.DATA_PROC_GROUP_ID}.replay.${crypto.randomUUID()}`,
    maxWaitTimeInMs: 100,
    // Small fetches: kafkajs decodes a whole fetch response in one go.
    maxBytesPerPartition: 64 * 1024,
    maxBytes: 256 * 1024,
  });
  const started = Date.now();
  let recordsRead = 0;
  const maxRate = host.config.DATA_PROC_REPLAY_MAX_RECORDS_PER_S;
  const duty = new DutyCycle(host.liveBatches, host.signal);
  await consumer.connect();
  try {
    let resolveDone: () => void = () => {};
    let rejectDone: (err: unknown) => void = () => {};
    const done = new Promise<void>((res, rej) => {
      resolveDone = res;
      rejectDone = rej;
    });
    let lastRecordAt = Date.now();
    const joined = new Promise<void>((res) => consumer.on(consumer.events.GROUP_JOIN, () => res()));
    await consumer.subscribe({ topic, fromBeginning: true });
    const remaining = new Set([...reading.values()].filter((r) => !r.done).map((r) => r.partition));
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, isRunning }) => {
        const r = reading.get(batch.partition);
        if (r === undefined || !remaining.has(batch.partition) || !isRunning()) return;
        if (host.signal?.aborted) return rejectDone(host.signal.reason);
        lastRecordAt = Date.now();
        const byKey = new Map<string, KeyedEvent<unknown>[]>();
        let read = 0;
        for (const m of batch.messages as KafkaMessage[]) {
          const offset = Number(m.offset);
          if (offset > r.end) break;
          if (offset < r.from) continue; // fetched before the seek took effect
          read++;
          if (isControlRecord(m.headers)) {
            if (offset <= r.clockIncludes) continue;
            const mark = decodeJson(WatermarkRecord, m.value);
            if (mark.ok) applyWatermark(r.clock, mark.value);
            continue;
          }
          const decoded = decodeJson(schema, m.value);
          if (!decoded.ok) continue;
          const key = keyOf(decoded.value);
          if (!match(key)) continue;
          const event = {
            offset,
            appendTimeMs: Number(m.timestamp),
            clock: currentClock(r.clock),
            value: decoded.value,
          };
          const list = byKey.get(key);
          if (list) list.push(event);
          else byKey.set(key, [event]);
        }
        try {
          await apply(r, byKey, read);
        } catch (err) {
          return rejectDone(err);
        }
        recordsRead += read;
        if (Number(batch.lastOffset()) >= r.end) {
          r.clockAtEnd = currentClock(r.clock);
          r.done = true;
          remaining.delete(batch.partition);
          consumer.pause([{ topic, partitions: [batch.partition] }]);
          if (remaining.size === 0) resolveDone();
        }
        const ahead = maxRate > 0 ? (1000 * recordsRead) / maxRate - (Date.now() - started) : 0;
        if (ahead > 0) await duty.rest(ahead);
        // Fetched batches ready back to back chain as microtasks: let I/O and timers run.
        else await duty.pause();
      },
    }).catch(rejectDone);
    await joined;
    for (const partition of topicPartitions) {
      const r = reading.get(partition);
      if (r && !r.done) consumer.seek({ topic, partition, offset: String(r.from) });
      else consumer.pause([{ topic, partitions: [partition] }]);
    }
    const stalled = setInterval(() => {
      if (Date.now() - lastRecordAt > READ_STALL_MS) {
        rejectDone(new Error(`replay read no record for ${READ_STALL_MS / 1000} s`));
      }
    }, 1000);
    const onAbort = () => rejectDone(host.signal?.reason);
    host.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      await done;
    } finally {
      clearInterval(stalled);
      host.signal?.removeEventListener("abort", onAbort);
    }
  } finally {
    await consumer.disconnect();
  }
}
