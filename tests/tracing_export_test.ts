/**
 * Tracing end to end: a real node with DATA_PROC_TRACE_ENABLED=true and Deno's built-in
 * OpenTelemetry (OTEL_DENO=true) exports its stage spans over OTLP/HTTP to a collector (a
 * small receiver here), under service.name 254carbon-data-processing-<component>. Without
 * DATA_PROC_TRACE_ENABLED, the same node creates none of them.
 */
import { ok } from "node:assert/strict";
import { createTopics, produceTicks } from "./actor_harness.ts";
import { generateTicks } from "./expected.ts";
import { spawnNode, waitReady } from "./node_process.ts";
import { freshEnv, pollUntil } from "./support.ts";
import { sleep } from "../timing/sleep.ts";

function collector() {
  const bodies: string[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const bytes = new Uint8Array(await req.arrayBuffer());
    // Protobuf carries strings as raw bytes: latin1 keeps them searchable.
    if (new URL(req.url).pathname === "/v1/traces") {
      bodies.push(new TextDecoder("latin1").decode(bytes));
    }
    return new Response(null, { status: 200 });
  });
  return { bodies, url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

async function runNode(traceEnabled: boolean) {
  const env = await freshEnv({
    DATA_PROC_NORMALIZER_ENABLED: "false",
    DATA_PROC_TRACE_ENABLED: String(traceEnabled),
  });
  await createTopics(env);
  const otel = collector();
  const node = await spawnNode({
    ...env.env,
    OTEL_DENO: "true",
    OTEL_EXPORTER_OTLP_ENDPOINT: otel.url,
    OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
    OTEL_SERVICE_NAME: "254carbon-data-processing-actors",
    OTEL_BSP_SCHEDULE_DELAY: "200",
  });
  return { env, otel, node };
}

const input = generateTicks({
  seed: 21,
  instruments: 5,
  count: 200,
  startMs: Date.UTC(2026, 10, 20, 9),
  spreadMs: 600_000,
  outOfOrderRatio: 0,
  duplicateRatio: 0,
});

Deno.test({
  name: "with tracing enabled a node exports actors.batch and actors.flush spans over OTLP",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { env, otel, node } = await runNode(true);
    try {
      await waitReady(node);
      await produceTicks(env, input);
      await pollUntil("stage spans at the collector", () => {
        const all = otel.bodies.join("");
        return all.includes("actors.batch") && all.includes("actors.flush")
          ? Promise.resolve(true)
          : Promise.resolve(undefined);
      }, { timeoutMs: 60_000 });
      const all = otel.bodies.join("");
      ok(all.includes("254carbon-data-processing-actors"), "service.name");
      ok(all.includes("254carbon-data-processing"), "tracer name");
      ok(all.includes("messaging.batch.message_count"), "batch attributes");
      ok(all.includes("deployment.environment.name"), "DATA_PROC_ENV on spans");
    } finally {
      await node.kill("SIGKILL");
      await otel.close();
      await env.cleanup();
    }
  },
});

Deno.test({
  name: "with tracing disabled a node creates no stage spans",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const { env, otel, node } = await runNode(false);
    try {
      await waitReady(node);
      await produceTicks(env, input);
      await pollUntil("ticks applied", async () => {
        const m = await (await fetch(`${node.url}/metrics`)).text();
        return /data_processing_events_total\{stage="aggregate",outcome="applied"\} 200/.test(m)
          ? true
          : undefined;
      });
      await sleep(1500); // one more export interval
      const all = otel.bodies.join("");
      ok(!all.includes("actors.batch") && !all.includes("actors.flush"));
    } finally {
      await node.kill("SIGKILL");
      await otel.close();
      await env.cleanup();
    }
  },
});
