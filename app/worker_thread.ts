/**
 * A worker thread of a node (DATA_PROC_WORKERS > 1): a node of its own in the consumer
 * groups, with its own event loop on its own core, its HTTP on 127.0.0.1 only (peers reach
 * it through the node registry as they reach any node). The main thread (app/worker_pool.ts)
 * starts and stops it and asks it for its metrics.
 */
/// <reference lib="deno.worker" />
import { loadConfig } from "../config/config.ts";
import { registry } from "../observability/metrics.ts";
import type { RunningNode } from "./node.ts";
import { startNode } from "./node.ts";

export type ToWorker =
  | { type: "start"; env: Record<string, string> }
  /** Start the consumers (after `prepared`). */
  | { type: "go" }
  | { type: "metrics"; id: number }
  | { type: "ready"; id: number }
  | { type: "stop" };

export type FromWorker =
  /** Stores set up; waiting for `go` to start the consumers. */
  | { type: "prepared" }
  | { type: "metrics"; id: number; metrics: unknown }
  | { type: "ready"; id: number; ready: boolean }
  | { type: "finished"; code: number };

let node: RunningNode | undefined;
let go: () => void = () => {};
const goSignal = new Promise<void>((resolve) => (go = resolve));

self.onmessage = async (e: MessageEvent<ToWorker>) => {
  const message = e.data;
  if (message.type === "start") {
    node = startNode(loadConfig(message.env), {
      worker: true,
      beforeConsumers: () => {
        self.postMessage({ type: "prepared" } satisfies FromWorker);
        return goSignal;
      },
    });
    const code = await node.finished;
    self.postMessage({ type: "finished", code } satisfies FromWorker);
  } else if (message.type === "go") {
    go();
  } else if (message.type === "metrics") {
    const metrics = await registry.getMetricsAsJSON();
    self.postMessage({ type: "metrics", id: message.id, metrics } satisfies FromWorker);
  } else if (message.type === "ready") {
    const ready = node ? (await node.readiness()).ready : false;
    self.postMessage({ type: "ready", id: message.id, ready } satisfies FromWorker);
  } else if (message.type === "stop") {
    if (node) await node.stop();
    else self.postMessage({ type: "finished", code: 0 } satisfies FromWorker);
  }
};
