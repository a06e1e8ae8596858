/**
 * The worker threads of a node (DATA_PROC_WORKERS - 1 of them beside the main thread), so a
 * node uses every core: each is a member of the consumer groups with its own event loop
 * (app/worker_thread.ts). The pool supervises them: a worker that stops or throws is started
 * again after a jittered backoff. It also gathers their metrics for the node's one /metrics.
 */
import type { Logger } from "../observability/logger.ts";
import type { MetricsJson } from "../observability/metrics_aggregate.ts";
import { jitteredBackoffMs } from "../timing/backoff.ts";
import { sleep } from "../timing/sleep.ts";
import type { FromWorker, ToWorker } from "./worker_thread.ts";

/** A worker that ran this long before it stopped starts again without backing off. */
const HEALTHY_RUN_MS = 60_000;
/** How long the main thread waits for its workers to set up before it starts anyway. */
const PREPARE_TIMEOUT_MS = 30_000;
/** How long a question to a worker (metrics, readiness) waits for its answer. */
const ANSWER_TIMEOUT_MS = 2000;

interface Slot {
  nodeId: string;
  /** Resolves when the worker has set up its stores and waits for `go`. */
  prepared: Promise<void> | undefined;
  /** Its last metrics answer: served again when it is too busy to answer in time. */
  lastMetrics: MetricsJson | undefined;
  worker: Worker | undefined;
  /** Resolves with the worker's exit code when it stops (or throws: code 1). */
  finished: Promise<number> | undefined;
  startedAt: number;
  failures: number;
}

export class WorkerPool {
  readonly #slots: Slot[];
  readonly #env: Record<string, string>;
  readonly #logger: Logger;
  readonly #abort = new AbortController();
  readonly #pending = new Map<number, (answer: FromWorker) => void>();
  #nextRequest = 0;
  /** Past the joint start: a (re)started worker starts its consumers when it is prepared. */
  #together = false;
  #supervising: Promise<void>[] = [];

  constructor(o: { count: number; nodeId: string; env: Record<string, string>; logger: Logger }) {
    this.#env = o.env;
    this.#logger = o.logger;
    this.#slots = Array.from({ length: o.count }, (_, i) => ({
      nodeId: `${o.nodeId}-w${i + 1}`,
      worker: undefined,
      finished: undefined,
      prepared: undefined,
      lastMetrics: undefined,
      startedAt: 0,
      failures: 0,
    }));
  }

  /**
   * Starts the workers and waits until each has set up its stores (or PREPARE_TIMEOUT_MS),
   * then lets them all start their consumers: the caller starts its own right after, so
   * every thread joins the groups in one rebalance. A worker restarted later starts at once.
   */
  async startTogether(signal: AbortSignal): Promise<void> {
    this.#supervising = this.#slots.map((slot) => this.#supervise(slot));
    const waited = new AbortController();
    const stop = () => waited.abort();
    signal.addEventListener("abort", stop, { once: true });
    await Promise.race([
      Promise.all(this.#slots.map((slot) => slot.prepared)),
      sleep(PREPARE_TIMEOUT_MS, waited.signal),
    ]);
    waited.abort();
    signal.removeEventListener("abort", stop);
    this.#together = true;
    for (const slot of this.#slots) slot.worker?.postMessage({ type: "go" } satisfies ToWorker);
  }

  /**
   * Every worker's metrics. One too busy to answer in time gives its last answer again, so
   * its counters never seem to drop (a restarted worker starts from zero, as a process would).
   */
  async metrics(): Promise<MetricsJson[]> {
    const answers = await Promise.all(this.#slots.map(async (slot) => {
      const answer = await this.#ask(slot, "metrics");
      if (answer?.type === "metrics") slot.lastMetrics = answer.metrics as MetricsJson;
      return slot.lastMetrics;
    }));
    return answers.filter((m): m is MetricsJson => m !== undefined);
  }

  /** The workers that are not running or whose node is not ready (its /ready). */
  async notReady(): Promise<string[]> {
    const answers = await Promise.all(this.#slots.map((slot) => this.#ask(slot, "ready")));
    return this.#slots.filter((_, i) => {
      const a = answers[i];
      return !(a?.type === "ready" && a.ready);
    }).map((s) => s.nodeId);
  }

  /** Stops every worker (each drains like a node) and waits for them. */
  async stop(timeoutMs: number): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#slots.map(async (slot) => {
      const { worker, finished } = slot;
      if (!worker || !finished) return;
      worker.postMessage({ type: "stop" } satisfies ToWorker);
      const waited = new AbortController();
      await Promise.race([finished, sleep(timeoutMs, waited.signal)]);
      waited.abort();
      worker.terminate();
      slot.worker = undefined;
    }));
    await Promise.all(this.#supervising);
  }

  async #supervise(slot: Slot): Promise<void> {
    while (!this.#abort.signal.aborted) {
      const code = await this.#run(slot);
      if (this.#abort.signal.aborted) return;
      slot.worker?.terminate();
      slot.worker = undefined;
      slot.failures = performance.now() - slot.startedAt >= HEALTHY_RUN_MS ? 1 : slot.failures + 1;
      const delayMs = jitteredBackoffMs(slot.failures, { baseMs: 500, capMs: 30_000 });
      this.#logger.error("worker stopped; starting it again", {
        worker: slot.nodeId,
        code,
        delay_ms: Math.round(delayMs),
      });
      await sleep(delayMs, this.#abort.signal);
    }
  }

  #run(slot: Slot): Promise<number> {
    const worker = new Worker(new URL("./worker_thread.ts", import.meta.url).href, {
      type: "module",
    });
    slot.worker = worker;
    slot.startedAt = performance.now();
    slot.lastMetrics = undefined;
    let prepared: () => void = () => {};
    slot.prepared = new Promise<void>((resolve) => (prepared = resolve));
    slot.finished = new Promise<number>((resolve) => {
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const message = e.data;
        if (message.type === "finished") resolve(message.code);
        else if (message.type === "prepared") {
          prepared();
          if (this.#together) worker.postMessage({ type: "go" } satisfies ToWorker);
        } else this.#pending.get(message.id)?.(message);
      };
      worker.onerror = (e: ErrorEvent) => {
        // Handled here: unhandled, a worker's error would end the main thread too.
        e.preventDefault();
        this.#logger.error("worker threw", { worker: slot.nodeId, error: e.message });
        resolve(1);
      };
    });
    worker.postMessage(
      {
        type: "start",
        env: {
          ...this.#env,
          DATA_PROC_NODE_ID: slot.nodeId,
          DATA_PROC_HTTP_PORT: "0",
          DATA_PROC_ADVERTISED_URL: "",
          DATA_PROC_WORKERS: "1",
        },
      } satisfies ToWorker,
    );
    return slot.finished;
  }

  async #ask(slot: Slot, type: "metrics" | "ready"): Promise<FromWorker | undefined> {
    const worker = slot.worker;
    if (!worker) return undefined;
    const id = this.#nextRequest++;
    const answer = new Promise<FromWorker>((resolve) => this.#pending.set(id, resolve));
    worker.postMessage({ type, id } satisfies ToWorker);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ANSWER_TIMEOUT_MS);
    });
    try {
      return await Promise.race([answer, late]);
    } finally {
      clearTimeout(timer);
      this.#pending.delete(id);
    }
  }
}
