/**
 * Actor state in Redis: per-key snapshots, per-partition ownership epochs (the fence), and
 * the fenced flush that writes a partition's projections and snapshots in one Lua call.
 *
 * State read back is decoded with its schema (messages/). A value that does not decode (not
 * JSON, or not the shape) is logged and treated as absent: a snapshot as if the key had
 * none, a partition state as if there were none (the partition is rebuilt from its log), a
 * clock checkpoint as if none were kept. One bad value must not stop a partition for good.
 */
import type { z } from "zod";
import type { Redis } from "./redis.ts";
import type { RedisKeys } from "./redis_keys.ts";
import { isPersistedActor, PersistedActor } from "../messages/persisted_actor.ts";
import { ClockCheckpoint, PersistedPartition } from "../messages/partition_state.ts";
import { createLogger, type Logger } from "../observability/logger.ts";

/** Clock checkpoints kept per partition: a week at one a minute. */
const CLOCK_CHECKPOINTS = 10_080;

/**
 * KEYS[1] = fence key; ARGV[1] = expected epoch; ARGV[2] = number of projections (n).
 * KEYS[2..n+1] are projection keys with ARGV triples (order, version, value): a projection
 * is written only when (order, version) is greater than the stored (start_ms or 0,
 * version). `order` is a bar's start_ms, so a newer bar replaces an older one whatever
 * their versions; other projections use 0. Remaining KEYS are snapshots with their values.
 * Returns -1 when the epoch moved (the partition has a new owner) and nothing is written.
 */
const FENCED_FLUSH = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[2])
local written = 0
for i = 1, n do
  local key = KEYS[i + 1]
  local order = tonumber(ARGV[3 * i])
  local version = tonumber(ARGV[3 * i + 1])
  local current = redis.call('GET', key)
  local ok = true
  if current then
    local okDecode, decoded = pcall(cjson.decode, current)
    if okDecode and type(decoded) == 'table' and tonumber(decoded.version) ~= nil then
      local storedOrder = tonumber(decoded.start_ms) or 0
      local storedVersion = tonumber(decoded.version)
      ok = order > storedOrder or (order == storedOrder and version > storedVersion)
    end
  end
  if ok then
    redis.call('SET', key, ARGV[3 * i + 2])
    written = written + 1
  end
end
for i = n + 2, #KEYS do
  redis.call('SET', KEYS[i], ARGV[2 + 3 * n + i - n - 1])
end
return written
`;

/** Projections plus snapshots per Lua call. */
const FLUSH_CHUNK = 1000;
/**
 * Bytes of values per Lua call: the client encodes a call's arguments in one synchronous
 * step and Redis runs the script in one, so a call of a thousand large snapshots would
 * stall both for tens of ms.
 */
const FLUSH_CHUNK_BYTES = 512 * 1024;

export interface FlushWrite {
  projections: { key: string; order: number; version: number; value: string }[];
  snapshots: { key: string; value: string }[];
}

export class ActorStore {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #logger: Logger;

  constructor(redis: Redis, keys: RedisKeys, options: { logger?: Logger } = {}) {
    this.#redis = redis;
    this.#keys = keys;
    this.#logger = options.logger ?? createLogger("actor_store");
    this.#redis.defineCommand("dpFencedFlush", { lua: FENCED_FLUSH });
  }

  get keys(): RedisKeys {
    return this.#keys;
  }

  async ping(): Promise<void> {
    await this.#redis.ping();
  }

  /** Takes ownership of a partition: a new epoch that fences out every earlier owner. */
  async claim(topic: string, partition: number): Promise<number> {
    return await this.#redis.incr(this.#keys.fence(topic, partition));
  }

  async epochs(parts: { topic: string; partition: number }[]): Promise<(number | null)[]> {
    if (parts.length === 0) return [];
    const values = await this.#redis.mget(parts.map((p) => this.#keys.fence(p.topic, p.partition)));
    return values.map((v) => (v === null ? null : Number(v)));
  }

  /** Decodes a stored value; undefined (with a warning) when it is not JSON of the schema. */
  #decode<T>(
    schema: z.ZodType<T>,
    key: string,
    value: string,
    /** A hand-written check of the same rules: values it accepts skip the schema. */
    fastCheck?: (value: unknown) => value is T,
  ): T | undefined {
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch (err) {
      this.#logger.warn("stored value is not JSON; treated as absent", {
        key,
        error: (err as Error).message,
      });
      return undefined;
    }
    if (fastCheck?.(json)) return json;
    const decoded = schema.safeParse(json);
    if (decoded.success) return decoded.data;
    this.#logger.warn("stored value does not decode; treated as absent", {
      key,
      error: decoded.error.message,
    });
    return undefined;
  }

  /** Loads snapshots for keys; missing keys, and values that do not decode, are absent. */
  async load(kind: string, keys: readonly string[]): Promise<Map<string, PersistedActor>> {
    const found = new Map<string, PersistedActor>();
    if (keys.length === 0) return found;
    const redisKeys = keys.map((k) => this.#keys.snapshot(kind, k));
    const values = await this.#redis.mget(redisKeys);
    values.forEach((v, i) => {
      if (v === null) return;
      const persisted = this.#decode(PersistedActor, redisKeys[i]!, v, isPersistedActor);
      if (persisted) found.set(keys[i]!, persisted);
    });
    return found;
  }

  /**
   * The stored state of a normalized partition (clock, open keys), if any; a value that
   * does not decode is absent, so the partition is rebuilt from its log.
   */
  async loadPartition(topic: string, partition: number): Promise<PersistedPartition | undefined> {
    const key = this.#keys.partitionState(topic, partition);
    const value = await this.#redis.get(key);
    return value === null ? undefined : this.#decode(PersistedPartition, key, value);
  }

  /**
   * Keeps the clock state at `offset` for replays. A checkpoint is a function of the log
   * alone, so it needs no fence; the newest CLOCK_CHECKPOINTS are kept.
   */
  async addClockCheckpoint(
    topic: string,
    partition: number,
    checkpoint: ClockCheckpoint,
  ): Promise<void> {
    const key = this.#keys.clockHistory(topic, partition);
    await this.#redis.multi()
      .zadd(key, checkpoint.offset, JSON.stringify(checkpoint))
      .zremrangebyrank(key, 0, -(CLOCK_CHECKPOINTS + 1))
      .exec();
  }

  /** The newest clock checkpoint at or below `offset`, if any. */
  async clockCheckpointAtOrBefore(
    topic: string,
    partition: number,
    offset: number,
  ): Promise<ClockCheckpoint | undefined> {
    const key = this.#keys.clockHistory(topic, partition);
    const [value] = await this.#redis.zrevrangebyscore(key, offset, "-inf", "LIMIT", 0, 1);
    return value === undefined ? undefined : this.#decode(ClockCheckpoint, key, value);
  }

  partitionKey(topic: string, partition: number): string {
    return this.#keys.partitionState(topic, partition);
  }

  snapshotKey(kind: string, key: string): string {
    return this.#keys.snapshot(kind, key);
  }

  /**
   * Writes one partition's projections (version-guarded) and snapshots, only if `epoch` is
   * still the partition's epoch. Returns false when fenced out.
   */
  async fencedFlush(
    topic: string,
    partition: number,
    epoch: number,
    write: FlushWrite,
  ): Promise<boolean> {
    // In calls of bounded size (a call's arguments go through the stack). Each call checks
    // the epoch itself, so a partition lost midway stops the rest; the snapshots already
    // written carry their own offsets, which is all a new owner needs.
    const projections = write.projections;
    const snapshots = write.snapshots;
    for (let p = 0, s = 0; p < projections.length || s < snapshots.length || p + s === 0;) {
      // At least one entry per call; then up to FLUSH_CHUNK entries or FLUSH_CHUNK_BYTES.
      let bytes = 0;
      let endP = p;
      while (endP < projections.length && endP - p < FLUSH_CHUNK && bytes < FLUSH_CHUNK_BYTES) {
        bytes += projections[endP++]!.value.length;
      }
      let endS = s;
      while (
        endS < snapshots.length && endP - p + endS - s < FLUSH_CHUNK && bytes < FLUSH_CHUNK_BYTES
      ) bytes += snapshots[endS++]!.value.length;
      const chunkP = projections.slice(p, endP);
      const chunkS = snapshots.slice(s, endS);
      p = endP;
      s = endS;
      const keys = [this.#keys.fence(topic, partition)];
      const args: (string | number)[] = [String(epoch), chunkP.length];
      for (const x of chunkP) {
        keys.push(x.key);
        args.push(x.order, x.version, x.value);
      }
      for (const x of chunkS) {
        keys.push(x.key);
        args.push(x.value);
      }
      // deno-lint-ignore no-explicit-any
      const result = await (this.#redis as any).dpFencedFlush(keys.length, ...keys, ...args);
      if (Number(result) < 0) return false;
      if (chunkP.length + chunkS.length === 0) break;
    }
    return true;
  }
}
