/**
 * Asks a node to replay one instrument (`POST /replay`) and waits for the job to finish
 * (`GET /replay/{job_id}`), with a deadline. Used by `reconcile --repair`.
 */
import { sleep } from "../timing/sleep.ts";

export interface ReplayInstrumentOptions {
  nodeUrl: string;
  token: string;
  instrumentId: string;
  /** Epoch ms from which the node replays. */
  fromTime: number;
  requestedBy: string;
  timeoutMs: number;
  pollIntervalMs?: number;
  signal?: AbortSignal;
}

export interface ReplayOutcome {
  /** `done`/`failed` as the node reported; `refused` when the POST was not accepted. */
  status: "done" | "failed" | "refused" | "timeout" | "unreachable";
  job_id: string | null;
  http_status: number | null;
  /** The node's last answer (job state or error body), for the audit log. */
  detail: unknown;
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text);
  } catch {
    return text.slice(0, 2000);
  }
}

/** Requests the replay of one instrument and polls its job until done, failed or timeout. */
export async function replayInstrument(options: ReplayInstrumentOptions): Promise<ReplayOutcome> {
  if (!(options.timeoutMs > 0)) {
    throw new RangeError(`Cannot replay: timeoutMs must be > 0, got ${options.timeoutMs}`);
  }
  const base = options.nodeUrl.replace(/\/+$/, "");
  const headers = {
    "authorization": `Bearer ${options.token}`,
    "content-type": "application/json",
  };
  const deadline = Date.now() + options.timeoutMs;
  let response: Response;
  try {
    response = await fetch(`${base}/replay`, {
      method: "POST",
      headers,
      body: JSON.stringify({
        kind: "instrument",
        from_key: options.instrumentId,
        to_key: options.instrumentId,
        from_time: options.fromTime,
        requested_by: options.requestedBy,
      }),
      ...(options.signal ? { signal: options.signal } : {}),
    });
  } catch (err) {
    return { status: "unreachable", job_id: null, http_status: null, detail: String(err) };
  }
  const accepted = await readBody(response);
  const jobId = (accepted as { job_id?: unknown } | null)?.job_id;
  if (response.status !== 202 || (typeof jobId !== "string" && typeof jobId !== "number")) {
    return { status: "refused", job_id: null, http_status: response.status, detail: accepted };
  }
  const id = String(jobId);
  let last: unknown = accepted;
  let lastStatus = response.status;
  while (Date.now() < deadline) {
    await sleep(options.pollIntervalMs ?? 500, options.signal);
    options.signal?.throwIfAborted();
    try {
      const poll = await fetch(`${base}/replay/${encodeURIComponent(id)}`, {
        headers,
        ...(options.signal ? { signal: options.signal } : {}),
      });
      lastStatus = poll.status;
      last = await readBody(poll);
    } catch (err) {
      last = String(err);
      continue;
    }
    const status = (last as { status?: unknown } | null)?.status;
    if (status === "done" || status === "failed") {
      return { status, job_id: id, http_status: lastStatus, detail: last };
    }
    // An operator cancelled it: the repair did not happen.
    if (status === "cancelled") {
      return { status: "failed", job_id: id, http_status: lastStatus, detail: last };
    }
  }
  return { status: "timeout", job_id: id, http_status: lastStatus, detail: last };
}
