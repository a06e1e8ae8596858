/**
 * docker-compose.yml, checked without a Docker engine (CI has none): `docker-compose config`
 * accepts it, and it holds what a Docker user needs: the tested versions, a Kafka listener for
 * the host, healthchecks that `depends_on` waits for, files that exist, and node variables the
 * node knows.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { loadConfig } from "../config/config.ts";
import { createClickHouse, queryRows } from "../stores/clickhouse.ts";

const REPO = new URL("../", import.meta.url).pathname;

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

async function compose(): Promise<Obj> {
  const text = await Deno.readTextFile(`${REPO}docker-compose.yml`);
  return parse(text, { merge: true }) as Obj;
}

/** `${NAME:-default}` as Compose resolves it with NAME unset. */
function interpolate(value: unknown): string {
  return String(value).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, "$1");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test("docker-compose config accepts docker-compose.yml", async () => {
  let out;
  try {
    out = await new Deno.Command("docker-compose", {
      args: ["-f", `${REPO}docker-compose.yml`, "config", "-q"],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    throw new Error(`docker-compose not found (deploy/local/tools.sh installs it): ${err}`);
  }
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
});

Deno.test("compose runs the tested versions of Kafka, ClickHouse and Deno", async () => {
  const { services } = await compose();
  const kafkaScript = await Deno.readTextFile(`${REPO}deploy/local/kafka.sh`);
  const kafkaVersion = /^KAFKA_VERSION=(\S+)$/m.exec(kafkaScript)?.[1];
  assert.equal(services.kafka.image, `apache/kafka:${kafkaVersion}`);

  // The ClickHouse the tests run against (deploy/local/clickhouse.sh) is the tested one.
  const ch = createClickHouse(Deno.env.get("DATA_PROC_CLICKHOUSE_URL") ?? "http://127.0.0.1:8123");
  try {
    const [row] = await queryRows<{ v: string }>(ch, "SELECT version() AS v");
    assert.equal(services.clickhouse.image, `yandex/clickhouse-server:${row!.v}`);
  } finally {
    await ch.close();
  }

  const dockerfile = await Deno.readTextFile(`${REPO}Dockerfile`);
  assert.match(dockerfile, new RegExp(`^FROM denoland/deno:${Deno.version.deno}$`, "m"));
  const makefile = await Deno.readTextFile(`${REPO}Makefile`);
  assert.match(makefile, new RegExp(`^DENO_VERSION := ${Deno.version.deno}$`, "m"));
  assert.equal(services.postgres.image, "postgres:15");
  assert.equal(services.redis.image, "redis:7");
  assert.ok(services.redis.command.includes("--appendonly"), "Redis runs with AOF");
});

Deno.test("compose advertises a Kafka listener to the host and one to the containers", async () => {
  const { services } = await compose();
  const env = services.kafka.environment;
  const advertised = new Map<string, string>(
    String(env.KAFKA_ADVERTISED_LISTENERS).split(",").map((l) => {
      const [name, address] = l.split("://");
      return [name!, address!];
    }),
  );
  const hostListener = [...advertised.entries()].find(([, a]) =>
    /^(127\.0\.0\.1|localhost):9092$/.test(a)
  );
  assert.ok(hostListener, `no host listener on 9092 in ${env.KAFKA_ADVERTISED_LISTENERS}`);
  assert.ok(services.kafka.ports.includes("9092:9092"), "9092 is not published to the host");
  // The containers' bootstrap is an advertised listener of the broker, not the host's.
  const bootstrap = services.node.environment.DATA_PROC_KAFKA_BOOTSTRAP;
  assert.ok([...advertised.values()].includes(bootstrap), `${bootstrap} is not advertised`);
  for (const name of advertised.keys()) {
    assert.match(String(env.KAFKA_LISTENER_SECURITY_PROTOCOL_MAP), new RegExp(`${name}:`));
  }
});

Deno.test("every compose service has a healthcheck, and the node waits for them", async () => {
  const { services } = await compose();
  for (const [name, service] of Object.entries<Obj>(services)) {
    if (name === "migrate") continue; // one-shot: dependents wait for it to complete
    const test = service.healthcheck?.test;
    assert.ok(Array.isArray(test) && test.length > 1, `${name} has no healthcheck`);
    assert.ok(service.healthcheck.disable !== true, `${name} disables its healthcheck`);
  }
  const dependsOn = services.node.depends_on;
  for (const store of ["kafka", "clickhouse", "postgres", "redis"]) {
    assert.equal(dependsOn[store]?.condition, "service_healthy", `node -> ${store}`);
  }
  assert.equal(dependsOn.migrate?.condition, "service_completed_successfully");
  assert.deepEqual(services.migrate.command, ["task", "migrate"]);
  assert.equal(services.node.healthcheck.test.at(-1), "/ready");
  // Every depends_on names a service that exists.
  for (const [name, service] of Object.entries<Obj>(services)) {
    for (const dep of Object.keys(service.depends_on ?? {})) {
      assert.ok(services[dep], `${name} depends on unknown ${dep}`);
    }
  }
});

Deno.test("compose runs the sample generator as make start does", async () => {
  const { services } = await compose();
  const makefile = await Deno.readTextFile(`${REPO}Makefile`);
  assert.match(makefile, /task generate --seed-refdata --rate \$\(SAMPLE_RATE\) --count 0/);
  assert.deepEqual(services.generator.command, [
    "task",
    "generate",
    "--seed-refdata",
    "--rate",
    "20",
    "--count",
    "0",
  ]);
});

Deno.test("every file compose mounts or builds from exists in the repo", async () => {
  const { services } = await compose();
  const missing: string[] = [];
  for (const [name, service] of Object.entries<Obj>(services)) {
    for (const volume of service.volumes ?? []) {
      const source = String(volume).split(":")[0]!;
      if (!source.startsWith("./")) continue; // a named volume
      if (!(await exists(`${REPO}${source.slice(2)}`))) missing.push(`${name}: ${source}`);
    }
    if (service.build) {
      const context = typeof service.build === "string" ? service.build : service.build.context;
      if (!(await exists(`${REPO}${context}/Dockerfile`))) missing.push(`${name}: Dockerfile`);
    }
  }
  assert.deepEqual(missing, []);
  // Prometheus scrapes the node and loads the rules compose mounts.
  const prometheus = parse(
    await Deno.readTextFile(`${REPO}deploy/compose/prometheus/prometheus.yml`),
  ) as Obj;
  const targets = prometheus.scrape_configs.flatMap((s: Obj) =>
    s.static_configs.flatMap((c: Obj) => c.targets)
  );
  assert.ok(targets.includes(`node:${services.node.environment.DATA_PROC_HTTP_PORT}`));
  const mountedRules = services.prometheus.volumes.map((v: string) => v.split(":")[1]);
  for (const rules of prometheus.rule_files) assert.ok(mountedRules.includes(rules), rules);
});

Deno.test("the node's compose environment holds only variables the node knows", async () => {
  const { services } = await compose();
  const known = new Set(Object.keys(loadConfig({})));
  for (const name of ["migrate", "node", "generator"]) {
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(services[name].environment)) {
      assert.ok(known.has(key), `${name}: ${key} is not a DATA_PROC_* variable of config.ts`);
      env[key] = interpolate(value);
    }
    const config = loadConfig(env); // throws with every bad variable named
    assert.notEqual(config.DATA_PROC_ADMIN_TOKEN, "", `${name}: admin token empty`);
  }
});
