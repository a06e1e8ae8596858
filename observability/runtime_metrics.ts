/**
 * Process and runtime metrics, and `data_processing_build_info`, registered once by the
 * node at start (not at import, so tests that import metrics.ts start no collectors).
 *
 * prom-client's default collectors work under Deno: `process_*` read /proc (with
 * --allow-read; without it they report 0 rather than throw), `nodejs_heap_*` use its v8
 * module. `nodejs_eventloop_lag_*` come from event_loop_delay.ts instead: prom-client's read
 * Deno's perf_hooks histogram, which stalls the loop at every scrape.
 * `nodejs_gc_duration_seconds` stays empty (Deno reports no GC entries).
 * `data_processing_heap_*` compare each thread's V8 heap with its limit
 * (`--max-old-space-size` in the start task, deno.json).
 */
import v8 from "node:v8";
import client from "prom-client";
import { EVENT_LOOP_LAG_METRICS, registerEventLoopDelay } from "./event_loop_delay.ts";
import { metrics, registry } from "./metrics.ts";

/** The service's version: bumped with releases (deno.json carries none). */
export const VERSION = "0.1.0";

let registered = false;

/**
 * How often the event loop's delay is sampled: each sample wakes the thread (prom-client's
 * default is 10 ms; at 20 ms an idle node's CPU did not change measurably).
 */
const EVENT_LOOP_RESOLUTION_MS = 20;

const LINT_FAILING_DEFAULTS = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
];

export interface BuildInfo {
  version: string;
  commit: string;
  deno: string;
}

/** Registers the default collectors and sets the build info gauge; later calls do nothing. */
export function registerRuntimeMetrics(build: BuildInfo = readBuildInfo()): void {
  if (registered) return;
  registered = true;
  // prom-client samples the loop with Deno's native histogram from here on; its resolution is
  // set long, as its gauges are replaced below and nothing reads it.
  client.collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 1000 });
  // Gauges named like counters (`promtool check metrics` flags them); the same numbers stay
  // on /metrics by type in nodejs_active_handles, _requests and _resources.
  for (const name of LINT_FAILING_DEFAULTS) registry.removeSingleMetric(name);
  for (const name of EVENT_LOOP_LAG_METRICS) registry.removeSingleMetric(name);
  registerEventLoopDelay(registry, { resolutionMs: EVENT_LOOP_RESOLUTION_MS });
  metrics.buildInfo.set({ version: build.version, commit: build.commit, deno: build.deno }, 1);
  new client.Gauge({
    name: "data_processing_heap_limit_bytes",
    help: "V8's heap size limit of each thread, added up over the node's threads",
    registers: [registry],
    collect() {
      this.set(heapLimitBytes());
    },
  });
  new client.Gauge({
    name: "data_processing_heap_used_ratio",
    help: "V8 heap used over its limit, in the fullest of the node's threads (garbage included)",
    registers: [registry],
    collect() {
      const heap = v8.getHeapStatistics();
      this.set(heap.used_heap_size / heap.heap_size_limit);
    },
  });
}

/** This thread's V8 heap limit (old space, from --max-old-space-size, plus young generation). */
export function heapLimitBytes(): number {
  return v8.getHeapStatistics().heap_size_limit;
}

/**
 * The build's commit from `DATA_PROC_BUILD_COMMIT` (set by the image build), else read from
 * the checkout's .git (HEAD, then the ref it names, loose or packed), else "unknown".
 */
export function readBuildInfo(
  options: { env?: (name: string) => string | undefined; gitDir?: string } = {},
): BuildInfo {
  const env = options.env ?? safeEnv;
  const gitDir = options.gitDir ?? new URL("../.git", import.meta.url).pathname;
  const commit = env("DATA_PROC_BUILD_COMMIT")?.trim() || gitCommit(gitDir) || "unknown";
  return { version: VERSION, commit, deno: Deno.version.deno };
}

function safeEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

function readText(path: string): string | undefined {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return undefined; // no checkout, or no read permission
  }
}

/** The commit HEAD points at, without running git. */
export function gitCommit(gitDir: string): string | undefined {
  const head = readText(`${gitDir}/HEAD`)?.trim();
  if (!head) return undefined;
  if (/^[0-9a-f]{40}$/.test(head)) return head.slice(0, 12); // detached
  const ref = /^ref: (.+)$/.exec(head)?.[1];
  if (!ref) return undefined;
  const loose = readText(`${gitDir}/${ref}`)?.trim();
  if (loose && /^[0-9a-f]{40}$/.test(loose)) return loose.slice(0, 12);
  const packed = readText(`${gitDir}/packed-refs`) ?? "";
  for (const line of packed.split("\n")) {
    const [sha, name] = line.trim().split(" ");
    if (name === ref && sha && /^[0-9a-f]{40}$/.test(sha)) return sha.slice(0, 12);
  }
  return undefined;
}
