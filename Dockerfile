# One node of 254carbon data processing (`deno task start`). Build: `docker build -t
# data-processing .`; configuration comes from DATA_PROC_* variables (README, "Configuration").
FROM denoland/deno:2.9.6

WORKDIR /app
# The base image's non-root user (uid 1993) owns the app and Deno's cache; nothing runs as root.
RUN chown deno:deno /app
USER deno

# Dependencies first, from the lock file only (a layer that changes only when they change).
COPY --chown=deno:deno deno.json deno.lock import_map.json ./
RUN deno install --frozen

COPY --chown=deno:deno . .
# Warm the cache for the node and every tool, so a container never downloads at start.
RUN deno cache main.ts app/worker_thread.ts supervisors/replay_worker.ts tools/migrate.ts tools/generate.ts tools/dlq_reprocess.ts \
  tools/reconcile.ts tools/projection_reconcile.ts tools/dq.ts deploy/healthcheck.ts

ENV DATA_PROC_HTTP_PORT=8080
EXPOSE 8080

# Liveness by /health (the image has no curl: a small Deno fetch). docker-compose.yml checks
# /ready instead; Kubernetes uses both as probes (deploy/k8s).
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["deno", "run", "--no-config", "--allow-net=127.0.0.1", "--allow-env=DATA_PROC_HTTP_PORT", "deploy/healthcheck.ts", "/health"]

# The base image's entrypoint runs `deno` with these arguments: `deno task start`, which
# forwards SIGTERM to the node, so a stop drains (flush, commit, leave the group).
CMD ["task", "start"]
