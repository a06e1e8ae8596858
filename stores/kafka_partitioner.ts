/**
 * The partitioner of the node's producers: the Java client's default for keyed messages
 * (murmur2 of the key's bytes, made positive, modulo the partitions), as kafkajs's
 * DefaultPartitioner computes it, so every key lands where it did. kafkajs hashes with 64-bit
 * Long arithmetic (several BigInt objects per 4 bytes of key) and builds a Buffer for each
 * string key; this one hashes in 32-bit integers from a reused buffer.
 */
import type { ICustomPartitioner, PartitionerArgs } from "kafkajs";

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 (the Java client's `Utils.murmur2`) of `length` bytes of `data`. */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const tail = length & 3;
  if (tail === 3) h ^= data[whole + 2]! << 16;
  if (tail >= 2) h ^= data[whole + 1]! << 8;
  if (tail >= 1) h = Math.imul(h ^ data[whole]!, M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/** murmur2 of a key as Kafka sees it: its bytes, a string's in UTF-8. */
export function keyHash(key: Uint8Array | string): number {
  if (typeof key !== "string") return murmur2(key);
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  if (scratch.length < key.length * 3) scratch = new Uint8Array(key.length * 3);
  const { written } = encoder.encodeInto(key, scratch);
  return murmur2(scratch, written);
}

/**
 * kafkajs's DefaultPartitioner, hashing with `keyHash`: a message's own partition if it has
 * one, else its key's, else round robin over the partitions that have a leader.
 */
export const KeyHashPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }: PartitionerArgs) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key !== null && message.key !== undefined) {
      return (keyHash(message.key) & 0x7fffffff) % partitionMetadata.length;
    }
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    const next = (counters.get(topic) ?? Math.floor(Math.random() * 2 ** 31)) + 1;
    counters.set(topic, next);
    const pool = available.length > 0 ? available : partitionMetadata;
    return pool[(next & 0x7fffffff) % pool.length]!.partitionId;
  };
};
