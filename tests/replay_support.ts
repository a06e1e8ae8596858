/**
 * Replay jobs through a real node's HTTP API, for the tests that run them: request, read,
 * wait for an end state, and wait until the node announced its partitions (a replay needs
 * an owner).
 */
import assert from "node:assert/strict";
import type { NodeProcess } from "./node_process.ts";
import { pollUntil, type TestEnv } from "./support.ts";

/** The admin token's header, as the node under test was started with it. */
export function admin(env: TestEnv) {
  return { authorization: `Bearer ${env.env.DATA_PROC_ADMIN_TOKEN}` };
}

export async function requestReplay(
  node: NodeProcess,
  env: TestEnv,
  body: Record<string, unknown>,
) {
  const res = await fetch(`${node.url}/replay`, {
    method: "POST",
    headers: { "content-type": "application/json", ...admin(env) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** A job's view (GET /replay/{id}). */
export async function job(node: NodeProcess, env: TestEnv, id: string) {
  const res = await fetch(`${node.url}/replay/${id}`, { headers: admin(env) });
  assert.equal(res.status, 200);
  return await res.json();
}

/** Polls a job until it reaches `status`. */
export async function waitJob(node: NodeProcess, env: TestEnv, id: string, status = "done") {
  return await pollUntil(`replay job ${status}`, async () => {
    const view = await job(node, env, id);
    if (view.status === status) return view;
    if (["done", "failed", "cancelled"].includes(view.status)) {
      throw new Error(`replay job ended ${view.status}: ${JSON.stringify(view)}`);
    }
    return undefined;
  }, { timeoutMs: 120_000 });
}

export async function announced(node: NodeProcess) {
  await pollUntil("node announced its partitions", async () => {
    const body = await (await fetch(`${node.url}/partitions`)).json();
    return body.nodes.some((n: { partitions: unknown[] }) => n.partitions.length > 0)
      ? true
      : undefined;
  });
}
