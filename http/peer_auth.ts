/**
 * The node-to-node credential of a forwarded admin request (a reset sent to the key's owner):
 * the admin token never travels between nodes. The forwarding node signs the method, path,
 * its node id and the time with a key derived from the token (HMAC-SHA256 of
 * "dp-peer-key" under the token), and the owner checks the signature and that the time is
 * within a minute. A captured signature is good for that one request path for that minute,
 * and reveals nothing of the token.
 */
export const PEER_SIGNATURE_HEADER = "x-dp-peer-signature";
export const PEER_TIME_HEADER = "x-dp-peer-time";
/** The audit id of the token the original caller presented (who asked, for the owner's audit). */
export const PEER_CALLER_HEADER = "x-dp-caller-token-id";

const MAX_SKEW_MS = 60_000;
const encoder = new TextEncoder();

async function hmac(key: Uint8Array | string, message: string): Promise<Uint8Array> {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const cryptoKey = await crypto.subtle.importKey(
    "raw",
    raw as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", cryptoKey, encoder.encode(message)));
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function signature(
  token: string,
  fromNode: string,
  method: string,
  path: string,
  timeMs: number,
): Promise<string> {
  const key = await hmac(token, "dp-peer-key");
  return hex(await hmac(key, `${fromNode}\n${method.toUpperCase()}\n${path}\n${timeMs}`));
}

/** Headers that authenticate a request this node forwards to a peer. */
export async function peerHeaders(
  token: string,
  fromNode: string,
  method: string,
  path: string,
  callerTokenId: string | null,
  nowMs = Date.now(),
): Promise<Record<string, string>> {
  return {
    [PEER_TIME_HEADER]: String(nowMs),
    [PEER_SIGNATURE_HEADER]: await signature(token, fromNode, method, path, nowMs),
    ...(callerTokenId ? { [PEER_CALLER_HEADER]: callerTokenId } : {}),
  };
}

/** True when a forwarded request carries a valid, fresh signature from `fromNode`. */
export async function verifyPeer(
  token: string,
  fromNode: string,
  method: string,
  path: string,
  headers: { time?: string | undefined; signature?: string | undefined },
  nowMs = Date.now(),
): Promise<boolean> {
  const time = Number(headers.time);
  if (!headers.signature || !Number.isSafeInteger(time)) return false;
  if (Math.abs(nowMs - time) > MAX_SKEW_MS) return false;
  const expected = await signature(token, fromNode, method, path, time);
  if (expected.length !== headers.signature.length) return false;
  let diff = 0;
  for (let i = 0; i < expected.length; i++) {
    diff |= expected.charCodeAt(i) ^ headers.signature.charCodeAt(i);
  }
  return diff === 0;
}
