/**
 * Each node announces itself (id, HTTP address, owned partitions) in Redis under a key with
 * a TTL, so any node can find a key's owner; a crashed node disappears when its TTL runs out.
 */
import { NodeRecord } from "../messages/node_record.ts";
import { createLogger, type Logger } from "../observability/logger.ts";
import type { Redis } from "../stores/redis.ts";
import type { RedisKeys } from "../stores/redis_keys.ts";

export class NodeRegistry {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #ttlMs: number;

  readonly #confirm: ((records: NodeRecord[]) => Promise<NodeRecord[]>) | undefined;
  readonly #logger: Logger;

  /**
   * `confirm` keeps only the records Kafka vouches for (see group_members.ts): a `node:*`
   * key is a claim anyone who can write Redis can make, and peers are called at its URL.
   */
  constructor(
    redis: Redis,
    keys: RedisKeys,
    options: {
      ttlMs?: number;
      confirm?: (records: NodeRecord[]) => Promise<NodeRecord[]>;
      logger?: Logger;
    } = {},
  ) {
    this.#redis = redis;
    this.#keys = keys;
    this.#ttlMs = options.ttlMs ?? 10_000;
    this.#confirm = options.confirm;
    this.#logger = options.logger ?? createLogger("node_registry");
  }

  /**
   * Writes this node's entry (expiring after the TTL) and its id in the registry's index, a
   * sorted set scored by when the entry expires: listing reads the index, never SCANs the
   * keyspace (which holds every actor snapshot: a SCAN is thousands of round trips).
   */
  async announce(record: NodeRecord): Promise<void> {
    const now = Date.now();
    const index = this.#keys.nodeIndex();
    await this.#redis.multi()
      .set(this.#keys.node(record.node_id), JSON.stringify(record), "PX", this.#ttlMs)
      .zadd(index, now + this.#ttlMs, record.node_id)
      .zremrangebyscore(index, "-inf", now)
      .exec();
  }

  async remove(nodeId: string): Promise<void> {
    await this.#redis.multi().del(this.#keys.node(nodeId)).zrem(this.#keys.nodeIndex(), nodeId)
      .exec();
  }

  async list(): Promise<NodeRecord[]> {
    const ids = await this.#redis.zrangebyscore(this.#keys.nodeIndex(), Date.now(), "+inf");
    const keys = ids.map((id) => this.#keys.node(id));
    if (keys.length === 0) return [];
    const values = await this.#redis.mget(keys);
    const records = values.flatMap((v, i) => {
      if (v === null) return []; // expired since its last announcement
      const record = this.#decode(keys[i]!, v);
      return record ? [record] : [];
    });
    return this.#confirm ? await this.#confirm(records) : records;
  }

  /** A stored entry decoded; undefined (with a warning) when it is not a node record. */
  #decode(key: string, value: string): NodeRecord | undefined {
    let json: unknown;
    try {
      json = JSON.parse(value);
    } catch (err) {
      this.#logger.warn("node entry is not JSON; left out", { key, error: String(err) });
      return undefined;
    }
    const decoded = NodeRecord.safeParse(json);
    if (decoded.success) return decoded.data;
    this.#logger.warn("node entry does not decode; left out", {
      key,
      error: decoded.error.message,
    });
    return undefined;
  }

  /** The node that owns a topic partition, if any node announces it. */
  async ownerOf(topic: string, partition: number): Promise<NodeRecord | undefined> {
    return (await this.list()).find((n) =>
      n.partitions.some((p) => p.topic === topic && p.partition === partition)
    );
  }
}
