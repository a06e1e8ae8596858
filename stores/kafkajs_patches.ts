/**
 * Fixes to kafkajs 2.2.4, installed when this module loads (stores/kafkajs.ts imports it before
 * kafkajs, and every import of kafkajs's values goes through that module, so every client of
 * the node, its tools and its bench has them):
 *  - its request queue's idle timer loop, stopped;
 *  - its varint and varlong writers, writing into the encoder's buffer;
 *  - its varlong reader and its Long parser, without BigInt work per record;
 *  - its producer's grouping of a request's messages by partition, in linear time.
 * Each keeps kafkajs's behaviour (the bytes, the values) and its name, so a reader can compare
 * it with the original; if a future kafkajs lays out its files differently, the node logs a
 * warning and runs unpatched.
 */
import { createRequire } from "node:module";
import { createLogger } from "../observability/logger.ts";
import { groupMessagesPerPartition } from "./kafka_grouping.ts";

const log = createLogger("kafkajs");
const requireKafkajs = createRequire(import.meta.url);

/** The fields of kafkajs's RequestQueue that its pending-request check reads. */
export interface RequestQueueState {
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  throttledUntil: number;
  pending: unknown[];
  checkPendingRequests(): void;
}

/** kafkajs's CHECK_PENDING_REQUESTS_INTERVAL: how soon waiting requests are looked at again. */
const CHECK_PENDING_REQUESTS_MS = 10;

/**
 * kafkajs's RequestQueue.scheduleCheckPendingRequests, without its idle loop. In kafkajs
 * 2.2.4 a queue with nothing pending and no throttle still re-arms a timer of
 * `throttledUntil - now` (negative, so 1 ms) after every check: each connection wakes the
 * event loop ~500 times a second for nothing, for as long as it is open (tulios/kafkajs
 * #1556, #1704, #1751; not fixed in a release). This one re-arms only while requests wait
 * or a throttle runs, as kafkajs does otherwise; a request pushed later re-arms it.
 */
export function scheduleCheckPendingRequests(this: RequestQueueState): void {
  if (this.throttleCheckTimeoutId) return;
  let delayMs = this.throttledUntil - Date.now();
  if (this.pending.length > 0) delayMs = delayMs > 0 ? delayMs : CHECK_PENDING_REQUESTS_MS;
  else if (delayMs <= 0) return;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, delayMs);
}

/** The fields of kafkajs's protocol Encoder that its varint writers use. */
export interface EncoderState {
  buf: Uint8Array;
  offset: number;
  ensureAvailable(length: number): void;
  writeUVarInt(value: number): EncoderState;
}

/**
 * kafkajs's Encoder.writeUVarInt (unsigned LEB128 of a 32-bit value), writing into the
 * encoder's buffer. kafkajs builds an array and then a Buffer for each varint: six per
 * record produced, which made Buffer construction the costliest part of producing.
 */
export function writeUVarInt(this: EncoderState, value: number): EncoderState {
  this.ensureAvailable(5);
  const buf = this.buf;
  while ((value & 0xffffff80) !== 0) {
    buf[this.offset++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[this.offset++] = value & 0x7f;
  return this;
}

/**
 * Whether a varlong is a number whose 64-bit zigzag fits in 31 bits: then it is the 32-bit
 * zigzag, and its bytes are a varint's. (A record's timestamp delta nearly always is.)
 */
function smallVarLong(value: unknown): value is number {
  return typeof value === "number" && value >= -(2 ** 30) && value < 2 ** 30 &&
    Number.isInteger(value);
}

const zigZag = (value: number) => (value << 1) ^ (value >> 31);

/** The fields of kafkajs's protocol Decoder that its varlong reader uses. */
export interface DecoderState {
  buffer: Uint8Array;
  offset: number;
}

/** kafkajs's Long (a BigInt in an object; every operation makes a new one). */
type KafkajsLong = { value: bigint };

/**
 * kafkajs's Decoder.readVarLong for the varlongs of up to 4 bytes (a record's timestamp delta
 * nearly always), in Number arithmetic: kafkajs adds each byte as a shifted BigInt, ten
 * BigInt objects a record. Longer ones go to kafkajs's own.
 */
function readShortVarLongs(
  original: (this: DecoderState) => KafkajsLong,
  fromNumber: (value: number) => KafkajsLong,
) {
  return function readVarLong(this: DecoderState): KafkajsLong {
    const buffer = this.buffer;
    let at = this.offset;
    let zigZagged = 0;
    for (let shift = 0; shift < 28; shift += 7) {
      const byte = buffer[at++]!;
      zigZagged |= (byte & 0x7f) << shift;
      if (byte < 0x80) {
        this.offset = at;
        return fromNumber((zigZagged >>> 1) ^ -(zigZagged & 1));
      }
    }
    return original.call(this);
  };
}

/**
 * kafkajs's Long.fromString, remembering the last string: a fetched batch's records each
 * parse the batch's first offset and first timestamp again (two BigInt parses a record).
 * Safe because a Long never changes.
 */
function rememberLast(original: (value: string) => KafkajsLong) {
  let lastString: string | null = null;
  let lastLong: KafkajsLong | null = null;
  return function fromString(value: string): KafkajsLong {
    if (value !== lastString) {
      lastLong = original(value);
      lastString = value;
    }
    return lastLong!;
  };
}

/** What kafkajs exports from `path`, or undefined (another kafkajs layout). */
function kafkajsExport(path: string) {
  try {
    return requireKafkajs(`kafkajs/src/${path}`);
  } catch {
    return undefined;
  }
}

/**
 * Installs what `patch` makes of kafkajs's method `name` on the class exported from `path`;
 * warns instead when kafkajs has no such method, or `patch` returns null (what it needs is
 * missing).
 */
function install(
  path: string,
  name: string,
  patch: (
    original: (...args: never[]) => unknown,
    target: Record<string, unknown>,
  ) => unknown | null,
  where: "prototype" | "static",
): void {
  const exported = kafkajsExport(path);
  const target = where === "prototype" ? exported?.prototype : exported;
  const original = target?.[name];
  const patched = typeof original === "function" ? patch(original, target) : null;
  if (patched === null) {
    log.warn("kafkajs has changed: one of the node's fixes to it is not installed", { path, name });
    return;
  }
  target[name] = patched;
}

install(
  "network/requestQueue/index.js",
  "scheduleCheckPendingRequests",
  () => scheduleCheckPendingRequests,
  "prototype",
);
install("protocol/encoder.js", "writeUVarInt", () => writeUVarInt, "prototype");
install(
  "protocol/encoder.js",
  "writeVarLong",
  (original) =>
    function writeVarLong(this: EncoderState, value: unknown) {
      return smallVarLong(value)
        ? this.writeUVarInt(zigZag(value))
        : (original as (this: EncoderState, v: unknown) => EncoderState).call(this, value);
    },
  "prototype",
);
install(
  "protocol/encoder.js",
  "sizeOfVarLong",
  (original, Encoder) =>
    function sizeOfVarLong(value: unknown) {
      if (!smallVarLong(value)) return (original as (v: unknown) => number).call(Encoder, value);
      let encoded = zigZag(value);
      let bytes = 1;
      while ((encoded & 0xffffff80) !== 0) {
        bytes++;
        encoded >>>= 7;
      }
      return bytes;
    },
  "static",
);
install(
  "protocol/decoder.js",
  "readVarLong",
  (original) => {
    const Long = kafkajsExport("utils/long.js");
    if (typeof Long?.fromNumber !== "function") return null;
    return readShortVarLongs(
      original as (this: DecoderState) => KafkajsLong,
      (value) => Long.fromNumber(value),
    );
  },
  "prototype",
);
install(
  "utils/long.js",
  "fromString",
  (original, LongClass) =>
    rememberLast((value) =>
      (original as (this: unknown, v: string) => KafkajsLong).call(LongClass, value)
    ),
  "static",
);

/**
 * kafkajs's producer takes its grouping function when its module loads, as a module of its
 * own: this one replaces that module in the require cache before kafkajs loads it
 * (stores/kafkajs.ts imports this file before kafkajs). Loaded later, it cannot: it warns.
 */
function installModule(path: string, loadedBy: string, replacement: unknown): void {
  try {
    const resolved = requireKafkajs.resolve(`kafkajs/src/${path}`);
    if (requireKafkajs.resolve(`kafkajs/src/${loadedBy}`) in requireKafkajs.cache) {
      log.warn("kafkajs was loaded before the node's fixes: one of them is not installed", {
        path,
      });
      return;
    }
    requireKafkajs(resolved);
    requireKafkajs.cache[resolved]!.exports = replacement;
  } catch {
    log.warn("kafkajs has changed: one of the node's fixes to it is not installed", { path });
  }
}

installModule(
  "producer/groupMessagesPerPartition.js",
  "producer/sendMessages.js",
  groupMessagesPerPartition,
);
