/**
 * The node's HTTP surface as a Hono app built from its dependencies; the node serves it
 * with Deno.serve, tests call `app.request()`.
 */
import { Hono } from "hono";
import type { Registry } from "prom-client";
import { HttpError } from "./errors.ts";
import { readLimit } from "./read_limit.ts";
import type { Logger } from "../observability/logger.ts";
import { metrics } from "../observability/metrics.ts";

export interface ReadinessReport {
  ready: boolean;
  parts: Record<string, { ok: boolean; error?: string }>;
}

export interface AppDeps {
  logger: Logger;
  /** What /metrics serves (the node's registry, or it with its workers' added). */
  registry: Pick<Registry, "metrics" | "contentType">;
  readiness: () => Promise<ReadinessReport>;
  /** Further routes (operator endpoints) mounted on the same app. */
  routes?: ((app: Hono) => void)[];
  /** Reads (GET, probes aside) served per second at most; 0 or absent: no limit. */
  readsPerSecond?: number;
}

const KNOWN_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

export function createApp(deps: AppDeps): Hono {
  const app = new Hono();

  // Requests by route pattern (never the raw path: keys would make labels unbounded).
  app.use("*", async (c, next) => {
    await next();
    const route = c.req.routePath === "/*" ? "unmatched" : c.req.routePath;
    const method = KNOWN_METHODS.has(c.req.method) ? c.req.method : "other";
    metrics.httpRequests.labels(method, route, `${Math.floor(c.res.status / 100)}xx`).inc();
  });
  app.use("*", readLimit(deps.readsPerSecond ?? 0));

  app.onError((err, c) => {
    if (err instanceof HttpError) {
      // RFC 6750: a 401 names the scheme the client must use.
      if (err.status === 401) c.header("WWW-Authenticate", 'Bearer realm="data-processing"');
      return c.json(errorBody(err.code, err.message), err.status);
    }
    if (err instanceof SyntaxError) return c.json(errorBody("bad_request", err.message), 400);
    deps.logger.error("unhandled HTTP error", { err, path: c.req.path });
    return c.json(errorBody("internal", "internal error"), 500);
  });
  app.notFound((c) =>
    c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404)
  );

  app.get("/health", (c) => c.json({ status: "ok" }));

  app.get("/ready", async (c) => {
    const report = await deps.readiness();
    const failing = Object.entries(report.parts).filter(([, p]) => !p.ok).map(([name]) => name);
    return c.json(
      { status: report.ready ? "ready" : "not_ready", failing, parts: report.parts },
      report.ready ? 200 : 503,
    );
  });

  app.get("/metrics", async (c) => {
    const text = await deps.registry.metrics();
    return c.body(text, 200, { "content-type": deps.registry.contentType });
  });

  for (const mount of deps.routes ?? []) mount(app);
  return app;
}
