/**
 * Two fixes to kafkajs 2.2.4, installed on its classes when this module loads (stores/kafka.ts
 * imports it, so every client of the node, its tools and its bench has them). Each is a
 * method with kafkajs's behaviour and name, so a reader can compare it with the original;
 * if a future kafkajs lays out its files differently, the node logs a warning and runs
 * unpatched.
 */
import { createRequire } from "node:module";
import { createLogger } from "../observability/logger.ts";

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

/** Installs `method` as `name` on the class kafkajs exports from `path`, if it has one. */
function install(
  path: string,
  name: string,
  patch: (original: (...args: never[]) => unknown, target: Record<string, unknown>) => unknown,
  where: "prototype" | "static",
): void {
  let exported;
  try {
    exported = requireKafkajs(`kafkajs/src/${path}`);
  } catch {
    // another kafkajs layout: said below
  }
  const target = where === "prototype" ? exported?.prototype : exported;
  const original = target?.[name];
  if (typeof original !== "function") {
    log.warn("kafkajs has changed: one of the node's fixes to it is not installed", { path, name });
    return;
  }
  target[name] = patch(original, target);
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
