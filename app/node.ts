/**
 * The composition root of a node (called by main.ts): builds the stores, the supervisor
 * tree and the HTTP app from the config and wires them together. Serves HTTP at once (so
 * /health and /ready answer while stores come up), applies migrations and creates topics
 * with retries, then starts the normalizer and actor consumers and keeps the node's
 * registry entry fresh. Stops cleanly.
 */
import type { Config } from "../config/config.ts";
import { createApp, type ReadinessReport } from "../http/app.ts";
import { adminAuth, adminIdentity, auditActor } from "../http/admin_auth.ts";
import { auditRefused } from "../http/admin_audit.ts";
import { operatorRoutes } from "../http/operator_routes.ts";
import { replayRoutes } from "../http/replay_routes.ts";
import { statusPage } from "../http/status_page.tsx";
import { ReplayJobs, ReplayRunner } from "../supervisors/replay_jobs.ts";
import {
  createLogger,
  type Logger,
  setLogLevel,
  setProcessLogFields,
} from "../observability/logger.ts";
import {
  type LagMonitor,
  type LagMonitorOptions,
  startLagMonitor,
} from "../observability/lag_monitor.ts";
import { heapLimitBytes, registerRuntimeMetrics } from "../observability/runtime_metrics.ts";
import { HotKeys } from "../observability/hot_keys.ts";
import { registry, setStoredActorsSource } from "../observability/metrics.ts";
import { aggregatedMetrics } from "../observability/metrics_aggregate.ts";
import { configureTracing } from "../observability/tracing.ts";
import { ActorStore } from "../stores/actor_store.ts";
import { createClickHouse } from "../stores/clickhouse.ts";
import { createKafka, ensureTopics, topicNames } from "../stores/kafka.ts";
import { migrateClickHouse, migratePostgres } from "../stores/migrate.ts";
import { createPostgres } from "../stores/postgres.ts";
import { closeRedis, createRedis } from "../stores/redis.ts";
import { storedMaxVersions } from "../stores/projection_store.ts";
import { kindSettings, storedShape } from "../actors/kinds/kind.ts";
import { kindOf, KINDS } from "../actors/kinds/registry.ts";
import { redisKeys } from "../stores/redis_keys.ts";
import { storedActorCounter } from "../stores/stored_actors.ts";
import { ActorConsumer } from "../supervisors/actor_consumer.ts";
import { actorService } from "../supervisors/actor_service.ts";
import { startNormalizer } from "../supervisors/normalizer_supervisor.ts";
import { clientIdOf, GroupMembers } from "../supervisors/group_members.ts";
import { NodeRegistry } from "../supervisors/node_registry.ts";
import { jitteredBackoffMs } from "../timing/backoff.ts";
import { sleep } from "../timing/sleep.ts";
import { WorkerPool } from "./worker_pool.ts";

/** The most heap one live actor holds (an instrument with its history: 3-8 KB). */
const ACTOR_HEAP_BYTES = 8 * 1024;

export interface RunningNode {
  nodeId: string;
  port: number;
  /** What GET /ready reports. */
  readiness(): Promise<ReadinessReport>;
  /** Resolves when the node has stopped (after stop() or a fatal escalation). */
  finished: Promise<number>;
  stop(): Promise<void>;
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export function startNode(
  config: Config,
  options: {
    logger?: Logger;
    /** A worker thread of a node (app/worker_thread.ts): HTTP on 127.0.0.1, no workers. */
    worker?: boolean;
    /**
     * Awaited once the stores are set up, before the consumers start: a worker waits there
     * for its node's signal, so every thread joins the groups at once (one rebalance).
     */
    beforeConsumers?: () => Promise<void>;
    /** The environment the config came from (what workers load theirs from). */
    env?: Record<string, string>;
  } = {},
): RunningNode {
  setLogLevel(config.DATA_PROC_LOG_LEVEL);
  setProcessLogFields({ env: config.DATA_PROC_ENV });
  registerRuntimeMetrics();
  const nodeId = config.DATA_PROC_NODE_ID || `node-${Deno.hostname()}-${Deno.pid}`;
  const logger = options.logger ?? createLogger("node", { node_id: nodeId });
  const abort = new AbortController();
  const topics = topicNames(config.DATA_PROC_TOPIC_PREFIX);
  const keys = redisKeys(config.DATA_PROC_REDIS_PREFIX, config.DATA_PROC_GROUP_ID);

  const kafka = createKafka(config.DATA_PROC_KAFKA_BOOTSTRAP, clientIdOf(nodeId));
  const admin = kafka.admin();
  const members = new GroupMembers({
    admin,
    groupIds: [`${config.DATA_PROC_GROUP_ID}.actors`, `${config.DATA_PROC_GROUP_ID}.normalizer`],
  });
  const redis = createRedis(config.DATA_PROC_REDIS_URL);
  redis.on("error", () => {}); // surfaced through /ready; ioredis reconnects by itself
  const sql = createPostgres(config.DATA_PROC_POSTGRES_DSN);
  const clickhouse = createClickHouse(config.DATA_PROC_CLICKHOUSE_URL);
  const store = new ActorStore(redis, keys, { logger: logger.child("actor_store") });
  // Peers are called only at the URL of a node that Kafka shows in one of the groups.
  const nodes = new NodeRegistry(redis, keys, {
    confirm: (records) => members.confirmed(records, nodeId),
    logger: logger.child("node_registry"),
  });
  const hotKeys = new HotKeys({ capacity: 1000, halfLifeMs: 60_000 });
  const tracing = configureTracing({
    enabled: config.DATA_PROC_TRACE_ENABLED,
    environment: config.DATA_PROC_ENV,
    component: config.DATA_PROC_NORMALIZER_ENABLED === config.DATA_PROC_ACTORS_ENABLED
      ? "node"
      : config.DATA_PROC_NORMALIZER_ENABLED
      ? "normalizer"
      : "actors",
  });
  for (const warning of tracing.warnings) logger.warn("tracing", { warning });
  // A group-wide count (a Redis SCAN): the main thread reports it for the whole node.
  if (!options.worker) {
    setStoredActorsSource(storedActorCounter(
      redis,
      Object.fromEntries(KINDS.map((k) => [k.name, keys.snapshotPattern(k.name)])),
      { onError: (err) => logger.warn("counting stored actors failed", { err }) },
    ));
  }

  let started = false;
  let normalizer: Awaited<ReturnType<typeof startNormalizer>> | undefined;
  let actors: ActorConsumer | undefined;
  const threads = options.worker ? 1 : config.DATA_PROC_WORKERS;
  // DATA_PROC_MAX_LIVE_ACTORS caps the node: each of its threads keeps its share.
  const liveActorsShare = Math.max(1, Math.floor(config.DATA_PROC_MAX_LIVE_ACTORS / threads));
  // A live actor holds 3-8 KB of heap (docs/benchmarks.md): a thread whose share could fill
  // half its heap would run out of it under load, and V8 ends the process when it does.
  const heapLimit = heapLimitBytes();
  if (!options.worker && liveActorsShare * ACTOR_HEAP_BYTES > heapLimit / 2) {
    logger.warn("DATA_PROC_MAX_LIVE_ACTORS may not fit in the V8 heap", {
      live_actors_per_thread: liveActorsShare,
      heap_limit_mib: Math.round(heapLimit / 2 ** 20),
      hint:
        "lower DATA_PROC_MAX_LIVE_ACTORS, raise DATA_PROC_WORKERS, or raise --max-old-space-size (deploy/k8s/README.md)",
    });
  }
  // Started once this thread's startup (migrations, topics) is done.
  const workers = threads > 1
    ? new WorkerPool({
      count: threads - 1,
      nodeId,
      env: {
        ...(options.env ?? Deno.env.toObject()),
        DATA_PROC_MAX_LIVE_ACTORS: String(liveActorsShare),
      },
      logger: logger.child("workers"),
    })
    : undefined;
  const actorsView = actorService({
    config,
    logger: logger.child("actors"),
    store,
    redis,
    clickhouse,
    actors: () => actors,
  });
  const lagMonitors: LagMonitor[] = [];
  let resolveFinished: (code: number) => void = () => {};
  const finished = new Promise<number>((r) => (resolveFinished = r));

  const readiness = async (): Promise<ReadinessReport> => {
    const check = async (name: string, probe: () => Promise<unknown>) => {
      try {
        await withTimeout(probe(), 2000, name);
        return [name, { ok: true }] as const;
      } catch (err) {
        return [name, { ok: false, error: (err as Error).message }] as const;
      }
    };
    const parts: ReadinessReport["parts"] = Object.fromEntries(
      await Promise.all([
        check("kafka", async () => {
          await admin.connect();
          await admin.describeCluster();
        }),
        check("redis", () => redis.ping()),
        check("postgres", () => sql`SELECT 1`),
        check("clickhouse", async () => {
          const r = await clickhouse.ping();
          if (!r.success) throw r.error;
        }),
        check("startup", () => started ? Promise.resolve() : Promise.reject(new Error("starting"))),
        check("flush", () => {
          const error = actors?.flushError ?? null;
          return error === null ? Promise.resolve() : Promise.reject(new Error(error));
        }),
        ...(workers
          ? [check("workers", async () => {
            const notReady = await workers.notReady();
            if (notReady.length > 0) throw new Error(`not ready: ${notReady.join(", ")}`);
          })]
          : []),
        check("kafka_group", () => {
          const joined = (!config.DATA_PROC_ACTORS_ENABLED || actors?.ready) &&
            (!config.DATA_PROC_NORMALIZER_ENABLED || normalizer?.isReady());
          return joined
            ? Promise.resolve()
            : Promise.reject(new Error("consumer group not joined"));
        }),
      ]),
    );
    return { ready: Object.values(parts).every((p) => p.ok), parts };
  };

  const jobs = new ReplayJobs(redis, keys);
  const admin_ = adminAuth({
    token: config.DATA_PROC_ADMIN_TOKEN,
    logger: logger.child("admin"),
    onRefused: auditRefused({ sql, logger: logger.child("admin"), nodeId }),
  });
  const replays = new ReplayRunner({
    nodeId,
    jobs,
    sql,
    logger: logger.child("replay"),
    replayDeps: () => {
      if (!actors) throw new Error("the actor stage is not running on this node");
      return { config, kafka, consumer: actors, redis, clickhouse, keys };
    },
  });

  const advertised = () =>
    config.DATA_PROC_ADVERTISED_URL || `http://127.0.0.1:${server.addr.port}`;
  const app = createApp({
    logger: logger.child("http"),
    registry: workers
      ? {
        contentType: registry.contentType,
        metrics: async () =>
          aggregatedMetrics([await registry.getMetricsAsJSON(), ...await workers.metrics()]),
      }
      : registry,
    readiness,
    readsPerSecond: config.DATA_PROC_HTTP_READS_PER_S,
    routes: [
      replayRoutes({
        config,
        logger: logger.child("replay"),
        nodeId,
        sql,
        nodes,
        jobs,
        adminGuard: admin_,
        caller: (c) => auditActor(adminIdentity(c)),
      }),
      operatorRoutes({
        config,
        logger: logger.child("http"),
        nodeId,
        actors: actorsView,
        nodes,
        sql,
        hotKeys,
        selfUrl: () => advertised(),
      }, { admin: admin_ }),
      statusPage({
        nodeId,
        env: config.DATA_PROC_ENV,
        readiness,
        nodes,
        hotKeys,
        jobs,
        actors: actorsView,
      }),
    ],
  });
  const server = Deno.serve({
    port: config.DATA_PROC_HTTP_PORT,
    // A worker is reached by its node's peers on this machine only.
    hostname: options.worker ? "127.0.0.1" : "0.0.0.0",
    signal: abort.signal,
    onListen: () => {},
  }, app.fetch);
  logger.info("http listening", { port: server.addr.port });

  const fatal = (err: unknown) => {
    logger.error("fatal: escalated to the node", { err });
    void stop(1);
  };

  // Startup with retries: stores may come up after the node.
  const startup = (async () => {
    for (let attempt = 1; !abort.signal.aborted; attempt++) {
      try {
        await redis.ping();
        await migratePostgres(sql);
        await migrateClickHouse(clickhouse, {
          silver: config.DATA_PROC_CLICKHOUSE_SILVER_DB,
          gold: config.DATA_PROC_CLICKHOUSE_GOLD_DB,
        });
        await admin.connect();
        await ensureTopics(admin, topics, config.DATA_PROC_NORMALIZED_PARTITIONS);
        break;
      } catch (err) {
        logger.warn("startup step failed; retrying", { attempt, err });
        await sleep(jitteredBackoffMs(attempt, { baseMs: 500, capMs: 5000 }), abort.signal);
      }
    }
    if (abort.signal.aborted) return;
    // Every thread's consumers join the groups together: one rebalance, not one per thread.
    if (workers) await workers.startTogether(abort.signal);
    await options.beforeConsumers?.();
    if (abort.signal.aborted) return;
    if (config.DATA_PROC_NORMALIZER_ENABLED) {
      normalizer = await startNormalizer({
        config,
        kafka,
        clickhouse,
        sql,
        logger: logger.child("normalizer"),
        signal: abort.signal,
      });
    }
    if (config.DATA_PROC_ACTORS_ENABLED) {
      actors = new ActorConsumer({
        config: { ...config, DATA_PROC_MAX_LIVE_ACTORS: liveActorsShare },
        kafka,
        clickhouse,
        store,
        logger: logger.child("actors"),
        onFatal: fatal,
        onKeyEvents: (kind, key, count) => hotKeys.record(kind, key, count),
        versionFloor: (kind, ids) =>
          storedMaxVersions(
            { config, redis, clickhouse, keys },
            storedShape(kindOf(kind), kindSettings(config)),
            ids,
          ),
      });
      await actors.start();
      replays.listen(); // shares of replay jobs that other nodes record for this one
    }
    // Consumer lag of each stage's group, for the partitions this node owns (group ids as
    // the consumers name them).
    const monitorLag = (stage: string, topicsOf: string[], owned: LagMonitorOptions["owned"]) =>
      lagMonitors.push(startLagMonitor({
        admin,
        groupId: `${config.DATA_PROC_GROUP_ID}.${stage}`,
        topics: topicsOf,
        owned,
        logger: logger.child("lag", { group: stage }),
        signal: abort.signal,
      }));
    if (normalizer) {
      const n = normalizer;
      monitorLag("normalizer", [topics.bronzeTicks, topics.bronzeCurves], () => n.assignment());
    }
    if (actors) {
      const a = actors;
      monitorLag("actors", [topics.normalizedTicks, topics.normalizedCurves], () => a.assignment());
    }
    started = true;
    logger.info("node started", {
      normalizer: !!normalizer,
      actors: !!actors,
      workers: threads - 1,
    });
  })().catch((err) => fatal(err));

  const announce = (async () => {
    while (!abort.signal.aborted) {
      try {
        await nodes.announce({
          node_id: nodeId,
          url: advertised(),
          partitions: actors?.assignment() ?? [],
          updated_at_ms: Date.now(),
        });
      } catch {
        // Redis down: /ready says so; the entry expires and is written again when it is back.
      }
      await sleep(2000, abort.signal);
    }
  })();

  let stopping: Promise<void> | undefined;
  const stop = (code = 0): Promise<void> => {
    stopping ??= (async () => {
      logger.info("stopping");
      abort.abort();
      const workersStopped = workers?.stop(config.DATA_PROC_SHUTDOWN_TIMEOUT_MS);
      await startup;
      await replays.settled();
      await announce;
      await Promise.all(lagMonitors.map((m) => m.done));
      await actors?.stop().catch((err) => logger.error("actor consumer stop failed", { err }));
      await normalizer?.stop().catch((err) => logger.error("normalizer stop failed", { err }));
      await nodes.remove(nodeId).catch(() => {});
      setStoredActorsSource(undefined);
      await server.shutdown();
      await admin.disconnect().catch(() => {});
      await clickhouse.close();
      await sql.end({ timeout: 5 });
      await closeRedis(redis);
      await workersStopped;
      logger.info("stopped");
      resolveFinished(code);
    })();
    return stopping;
  };

  return { nodeId, port: server.addr.port, readiness, finished, stop: () => stop(0) };
}
