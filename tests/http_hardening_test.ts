/**
 * HTTP hardening: peers are called only at addresses Kafka vouches for (a forged `node:*`
 * record in Redis is never called), forwarded admin requests carry a node-to-node signature
 * instead of the admin token, and the reads anyone can send are bounded.
 */
import assert from "node:assert/strict";
import type { Context } from "hono";
import type { Admin } from "kafkajs";
import { forwardTo } from "../http/forward.ts";
import {
  PEER_CALLER_HEADER,
  PEER_SIGNATURE_HEADER,
  PEER_TIME_HEADER,
  peerHeaders,
  verifyPeer,
} from "../http/peer_auth.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { clientIdOf, GroupMembers } from "../supervisors/group_members.ts";
import type { NodeRecord } from "../messages/node_record.ts";
import { createTopics } from "./actor_harness.ts";
import { spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil } from "./support.ts";

function record(nodeId: string, url: string): NodeRecord {
  return { node_id: nodeId, url, partitions: [], updated_at_ms: 0 };
}

/** An admin whose describeGroups answers from a fixed member list. */
function adminWith(members: { clientId: string; clientHost: string }[]): Admin {
  return {
    connect: () => Promise.resolve(),
    describeGroups: () =>
      Promise.resolve({
        groups: [{ groupId: "g", members, protocol: "", protocolType: "", state: "Stable" }],
      }),
  } as unknown as Admin;
}

Deno.test("group members: only records Kafka vouches for, at the address their member uses", async () => {
  const members = new GroupMembers({
    admin: adminWith([
      { clientId: clientIdOf("a"), clientHost: "/10.0.0.1" },
      { clientId: clientIdOf("b"), clientHost: "/10.0.0.2" },
    ]),
    groupIds: ["g"],
    resolve: (host) => Promise.resolve(host === "node-b.internal" ? ["10.0.0.2"] : []),
  });
  const kept = await members.confirmed([
    record("self", "http://anything:1"), // this node: always itself
    record("a", "http://10.0.0.1:8080"), // member, its own address
    record("b", "http://node-b.internal:8080"), // member, a name resolving to its address
    record("a2", "http://10.0.0.1:8080"), // not a member
    record("b", "http://attacker.example:8080"), // member id, another address
    record("a", "not a url"),
  ], "self");
  assert.deepEqual(kept.map((r) => `${r.node_id} ${r.url}`), [
    "self http://anything:1",
    "a http://10.0.0.1:8080",
    "b http://node-b.internal:8080",
  ]);
});

Deno.test("group members: while Kafka cannot say, only this node is trusted", async () => {
  const members = new GroupMembers({
    admin: {
      connect: () => Promise.resolve(),
      describeGroups: () => Promise.reject(new Error("broker down")),
    } as unknown as Admin,
    groupIds: ["g"],
  });
  const kept = await members.confirmed(
    [record("self", "http://x:1"), record("a", "http://10.0.0.1:1")],
    "self",
  );
  assert.deepEqual(kept.map((r) => r.node_id), ["self"]);
});

Deno.test({
  name: "a forged node record in Redis is never called by a real node",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({ DATA_PROC_NORMALIZER_ENABLED: "false" });
    await createTopics(env);
    let called = 0;
    const trap = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, () => {
      called++;
      return Response.json({ keys: [], partitions: [] });
    });
    const node = await spawnNode(env.env);
    const redis = createRedis(env.config.DATA_PROC_REDIS_URL);
    try {
      await waitReady(node);
      const keys = redisKeys(env.config.DATA_PROC_REDIS_PREFIX, env.config.DATA_PROC_GROUP_ID);
      const forged = record("forged", `http://127.0.0.1:${trap.addr.port}`);
      // Written as an announcement would be: anyone with Redis access can.
      await redis.set(keys.node("forged"), JSON.stringify(forged), "PX", 60_000);
      await redis.zadd(keys.nodeIndex(), Date.now() + 60_000, "forged");
      // The real node is listed (Kafka shows it in the group); the forged one never is.
      const partitions = await pollUntil("the node lists itself", async () => {
        const body = await (await fetch(`${node.url}/partitions`)).json();
        return body.nodes.length > 0 ? body : undefined;
      });
      assert.deepEqual(
        partitions.nodes.map((n: NodeRecord) => n.node_id).filter((id: string) => id === "forged"),
        [],
      );
      const res = await fetch(`${node.url}/hot-keys?scope=cluster`);
      assert.equal(res.status, 200);
      await res.body?.cancel();
      assert.equal(called, 0, "the forged address was called");
    } finally {
      await node.kill("SIGKILL");
      await closeRedis(redis);
      await trap.shutdown();
    }
  },
});

Deno.test("a forwarded admin request carries a signature, never the admin token", async () => {
  let seen: Headers | undefined;
  const peer = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    seen = req.headers;
    return Response.json({ ok: true });
  });
  try {
    const headers = new Headers({
      authorization: "Bearer secret-admin-token",
      "x-requested-by": "al",
    });
    const c = {
      req: {
        url: "http://127.0.0.1:1/actors/instrument/K/reset",
        method: "POST",
        header: (name: string) => headers.get(name) ?? undefined,
      },
    } as unknown as Context;
    const res = await forwardTo(c, record("b", `http://127.0.0.1:${peer.addr.port}`), "a", {
      body: "{}",
      signWith: { token: "secret-admin-token", callerTokenId: "1a2b3c4d" },
    });
    assert.equal(res.status, 200);
    assert.ok(seen);
    assert.equal(seen.get("authorization"), null);
    assert.equal(seen.get("x-requested-by"), "al");
    assert.equal(seen.get(PEER_CALLER_HEADER), "1a2b3c4d");
    assert.ok(
      await verifyPeer("secret-admin-token", "a", "POST", "/actors/instrument/K/reset", {
        time: seen.get(PEER_TIME_HEADER) ?? undefined,
        signature: seen.get(PEER_SIGNATURE_HEADER) ?? undefined,
      }),
    );
    // Another path, node, token or a stale time does not verify.
    const sig = { time: seen.get(PEER_TIME_HEADER)!, signature: seen.get(PEER_SIGNATURE_HEADER)! };
    assert.equal(await verifyPeer("secret-admin-token", "a", "POST", "/replay", sig), false);
    assert.equal(
      await verifyPeer("secret-admin-token", "x", "POST", "/actors/instrument/K/reset", sig),
      false,
    );
    assert.equal(await verifyPeer("other", "a", "POST", "/actors/instrument/K/reset", sig), false);
    assert.equal(
      await verifyPeer(
        "secret-admin-token",
        "a",
        "POST",
        "/actors/instrument/K/reset",
        sig,
        Number(sig.time) + 120_000,
      ),
      false,
    );
  } finally {
    await peer.shutdown();
  }
});

Deno.test({
  name: "a node accepts a forwarded admin request only with a valid peer signature",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({ DATA_PROC_NORMALIZER_ENABLED: "false" });
    await createTopics(env);
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      const path = "/actors/instrument/NO-SUCH-KEY/reset";
      const send = (headers: Record<string, string>) =>
        fetch(`${node.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-dp-forwarded": "peer-1", ...headers },
          body: "{}",
        });
      const forged = await send({
        [PEER_TIME_HEADER]: String(Date.now()),
        [PEER_SIGNATURE_HEADER]: "00",
      });
      assert.equal(forged.status, 401);
      assert.match(forged.headers.get("www-authenticate") ?? "", /^Bearer/);
      await forged.body?.cancel();
      const signed = await send(
        await peerHeaders(env.env.DATA_PROC_ADMIN_TOKEN!, "peer-1", "POST", path, null),
      );
      // Authenticated: the key is simply unknown.
      assert.equal(signed.status, 404, await signed.text());
    } finally {
      await node.kill("SIGKILL");
    }
  },
});

Deno.test({
  name: "a node bounds the reads anyone can send: 429 JSON with Retry-After, probes always answer",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const env = await freshEnv({
      DATA_PROC_NORMALIZER_ENABLED: "false",
      DATA_PROC_HTTP_READS_PER_S: "2",
    });
    await createTopics(env);
    const node = await spawnNode(env.env);
    try {
      await waitReady(node);
      // Ten reads at once against a bucket of 2 (1 a second): whatever the machine's speed,
      // at most 2 + one per elapsed second get through.
      const answers = await Promise.all(
        Array.from({ length: 10 }, async () => {
          const res = await fetch(`${node.url}/actors?limit=5`);
          return {
            status: res.status,
            retry: res.headers.get("retry-after"),
            body: await res.json(),
          };
        }),
      );
      const limited = answers.filter((a) => a.status === 429);
      assert.ok(limited.length >= 5, JSON.stringify(answers.map((a) => a.status)));
      assert.equal(limited[0]!.body.error.code, "rate_limited");
      assert.ok(Number(limited[0]!.retry) >= 1);
      for (let i = 0; i < 10; i++) {
        const res = await fetch(`${node.url}/health`);
        assert.equal(res.status, 200);
        await res.body?.cancel();
      }
    } finally {
      await node.kill("SIGKILL");
    }
  },
});
