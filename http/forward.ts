/**
 * Forwarding a request to the node that owns a key (or to every peer). The forwarded request
 * carries `x-dp-forwarded: <this node>` so the receiver answers itself and never forwards
 * again (no loops while ownership moves). An unreachable owner is a 502, never a hang.
 */
import type { Context } from "hono";
import type { NodeRecord } from "../messages/node_record.ts";
import { HttpError } from "./errors.ts";
import { peerHeaders } from "./peer_auth.ts";

export const FORWARDED_HEADER = "x-dp-forwarded";

/**
 * Headers a forwarded request keeps. Never `authorization`: the admin token stays on the node
 * it was sent to; an admin request is forwarded signed instead (peer_auth.ts).
 */
const KEPT = ["x-requested-by", "content-type", "accept"];

/** True when this request was forwarded by a peer (so it must be answered here). */
export function isForwarded(c: Context): boolean {
  return c.req.header(FORWARDED_HEADER) !== undefined;
}

function forwardedInit(
  c: Context,
  selfId: string,
  body: string | undefined,
  timeoutMs: number,
  signed: Record<string, string> = {},
) {
  const headers = new Headers({ [FORWARDED_HEADER]: selfId, ...signed });
  for (const name of KEPT) {
    const value = c.req.header(name);
    if (value !== undefined) headers.set(name, value);
  }
  if (body !== undefined) headers.set("content-type", "application/json");
  return {
    method: c.req.method,
    headers,
    ...(body !== undefined ? { body } : {}),
    signal: AbortSignal.timeout(timeoutMs),
  };
}

/**
 * Sends this request (same method, path and query; `body` as JSON when given) to `owner` and
 * returns its answer as this node's answer, tagged with `x-dp-served-by`.
 */
export async function forwardTo(
  c: Context,
  owner: NodeRecord,
  selfId: string,
  options: {
    body?: string;
    timeoutMs?: number;
    /** For an admin request: the token the peer checks the signature with. */
    signWith?: { token: string; callerTokenId: string | null };
  } = {},
): Promise<Response> {
  const url = new URL(c.req.url);
  const target = `${owner.url.replace(/\/+$/, "")}${url.pathname}${url.search}`;
  const signed = options.signWith
    ? await peerHeaders(
      options.signWith.token,
      selfId,
      c.req.method,
      url.pathname,
      options.signWith.callerTokenId,
    )
    : {};
  let res: Response;
  let payload: ArrayBuffer;
  try {
    res = await fetch(
      target,
      forwardedInit(c, selfId, options.body, options.timeoutMs ?? 5000, signed),
    );
    payload = await res.arrayBuffer();
  } catch (err) {
    throw new HttpError(
      502,
      "owner_unreachable",
      `owner node ${owner.node_id} (${owner.url}) did not answer: ${(err as Error).message}`,
    );
  }
  return new Response(payload, {
    status: res.status,
    headers: {
      "content-type": res.headers.get("content-type") ?? "application/json",
      "x-dp-served-by": owner.node_id,
    },
  });
}

/**
 * Asks every peer the same GET (forwarded, so they answer from themselves) and returns the
 * 200 answers that parsed as JSON; unreachable peers are listed in `failed`.
 */
export async function askPeers(
  c: Context,
  peers: readonly NodeRecord[],
  selfId: string,
  options: { timeoutMs?: number } = {},
): Promise<{ answers: { node: NodeRecord; body: unknown }[]; failed: string[] }> {
  const url = new URL(c.req.url);
  const results = await Promise.allSettled(peers.map(async (node) => {
    const target = `${node.url.replace(/\/+$/, "")}${url.pathname}${url.search}`;
    const res = await fetch(target, forwardedInit(c, selfId, undefined, options.timeoutMs ?? 3000));
    if (res.status !== 200) {
      await res.body?.cancel();
      return undefined;
    }
    return { node, body: await res.json() as unknown };
  }));
  const answers: { node: NodeRecord; body: unknown }[] = [];
  const failed: string[] = [];
  results.forEach((r, i) => {
    if (r.status === "fulfilled") {
      if (r.value) answers.push(r.value);
    } else failed.push(peers[i]!.node_id);
  });
  return { answers, failed };
}
