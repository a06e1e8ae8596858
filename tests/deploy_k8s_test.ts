/**
 * The Kubernetes manifests (deploy/k8s): each overlay rendered offline by the real kustomize
 * (`kubectl kustomize`, installed by deploy/local/tools.sh), every object validated against
 * the Kubernetes schemas (kubernetes-models), and the invariants that make them run: probes
 * on real routes of the app, a grace period longer than the node's drain, ports, selectors.
 */
import assert from "node:assert/strict";
import { parseAllDocuments } from "yaml";
import { Registry } from "prom-client";
import { ConfigMap, Secret, Service } from "kubernetes-models/v1";
import { Deployment } from "kubernetes-models/apps/v1";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";
import { loadConfig } from "../config/config.ts";
import { createApp } from "../http/app.ts";
import { createLogger } from "../observability/logger.ts";

const K8S = new URL("../deploy/k8s/", import.meta.url).pathname;
const OVERLAYS = ["staging", "production"] as const;

// deno-lint-ignore no-explicit-any
type Obj = Record<string, any>;

/** The schema of each kind the manifests may hold; any other kind fails the test. */
const MODELS: Record<string, (data: Obj) => { validate(): void }> = {
  "v1/ConfigMap": (data) => new ConfigMap(data),
  "v1/Secret": (data) => new Secret(data),
  "v1/Service": (data) => new Service(data),
  "apps/v1/Deployment": (data) => new Deployment(data),
  "policy/v1/PodDisruptionBudget": (data) => new PodDisruptionBudget(data),
  "monitoring.coreos.com/v1/ServiceMonitor": (data) => new ServiceMonitor(data as never),
};

async function render(dir: string): Promise<Obj[]> {
  let out;
  try {
    out = await new Deno.Command("kubectl", {
      args: ["kustomize", dir],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (err) {
    throw new Error(`kubectl not found (deploy/local/tools.sh installs it): ${err}`);
  }
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `kubectl kustomize ${dir} failed:\n${stderr}`);
  return parseYamlDocuments(new TextDecoder().decode(out.stdout));
}

function parseYamlDocuments(text: string): Obj[] {
  return parseAllDocuments(text).map((doc) => {
    assert.equal(doc.errors.length, 0, String(doc.errors[0]));
    return doc.toJS() as Obj;
  }).filter((o) => o !== null);
}

function validate(obj: Obj): void {
  const kind = `${obj.apiVersion}/${obj.kind}`;
  const model = MODELS[kind];
  assert.ok(model, `no schema for ${kind} (${obj.metadata?.name})`);
  model(obj).validate(); // throws with the failing path
}

function only(objs: Obj[], kind: string): Obj {
  const found = objs.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected one ${kind}, got ${found.length}`);
  return found[0]!;
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  return Object.keys(selector).length > 0 &&
    Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The node's HTTP app with no stores: enough to know which paths are routes. */
function appRoutes() {
  return createApp({
    logger: createLogger("deploy-k8s-test"),
    registry: new Registry(),
    readiness: () => Promise.resolve({ ready: true, parts: {} }),
  });
}

const defaults = loadConfig({});

for (const overlay of OVERLAYS) {
  Deno.test(`k8s ${overlay}: every rendered object is valid against the Kubernetes schemas`, async () => {
    const objs = await render(`${K8S}overlays/${overlay}`);
    assert.deepEqual(
      objs.map((o) => o.kind).sort(),
      ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service", "ServiceMonitor"],
    );
    for (const obj of objs) validate(obj);
    // Never a committed token: the Secret is made per namespace (base/admin-secret.example.yaml).
    assert.ok(!objs.some((o) => o.kind === "Secret"), "a Secret is rendered");
  });

  Deno.test(`k8s ${overlay}: probes, ports and the drain fit the node`, async () => {
    const objs = await render(`${K8S}overlays/${overlay}`);
    const deployment = only(objs, "Deployment");
    const configMap = only(objs, "ConfigMap");
    const pod = deployment.spec.template.spec;
    const container = pod.containers[0];
    const env: Record<string, string> = configMap.data;

    // Every variable is one the node knows, and together they parse.
    const known = new Set(Object.keys(defaults));
    for (const name of Object.keys(env)) assert.ok(known.has(name), `unknown variable ${name}`);
    const config = loadConfig({ ...env, DATA_PROC_ADMIN_TOKEN: "x" });

    // The container port is the one the node listens on.
    const http = container.ports.find((p: Obj) => p.name === "http");
    assert.equal(http.containerPort, config.DATA_PROC_HTTP_PORT);
    assert.equal(http.containerPort, defaults.DATA_PROC_HTTP_PORT);

    // Probes: liveness and startup on /health, readiness on /ready, each a real route.
    const app = appRoutes();
    const probes = {
      startupProbe: "/health",
      livenessProbe: "/health",
      readinessProbe: "/ready",
    };
    for (const [probe, path] of Object.entries(probes)) {
      const get = container[probe]?.httpGet;
      assert.ok(get, `${probe} missing`);
      assert.equal(get.path, path, probe);
      assert.equal(get.port, "http", `${probe} targets the http port`);
      const res = await app.request(get.path);
      await res.body?.cancel();
      assert.equal(res.status, 200, `${probe} ${get.path} is not a route of the app`);
    }

    // The grace period outlasts the node's own drain deadline (main.ts), default and set.
    const graceMs = pod.terminationGracePeriodSeconds * 1000;
    assert.ok(graceMs > config.DATA_PROC_SHUTDOWN_TIMEOUT_MS, "grace <= drain timeout");
    assert.ok(graceMs > defaults.DATA_PROC_SHUTDOWN_TIMEOUT_MS, "grace <= default drain");

    // Config from the generated ConfigMap, the admin token from a Secret, never inline.
    assert.deepEqual(container.envFrom, [{ configMapRef: { name: configMap.metadata.name } }]);
    const token = container.env.find((e: Obj) => e.name === "DATA_PROC_ADMIN_TOKEN");
    assert.ok(token?.valueFrom?.secretKeyRef?.name, "admin token not from a Secret");
    assert.equal(token.value, undefined);
    for (const e of container.env) {
      if (e.name.startsWith("DATA_PROC_")) assert.ok(known.has(e.name), `unknown ${e.name}`);
    }

    // Non-root, resources bounded.
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(container.securityContext.allowPrivilegeEscalation, false);
    for (const r of ["cpu", "memory"]) {
      assert.ok(container.resources.requests[r], `requests.${r}`);
      assert.ok(container.resources.limits[r], `limits.${r}`);
    }
  });

  Deno.test(`k8s ${overlay}: Service, PDB and ServiceMonitor select the node's pods`, async () => {
    const objs = await render(`${K8S}overlays/${overlay}`);
    const deployment = only(objs, "Deployment");
    const service = only(objs, "Service");
    const pdb = only(objs, "PodDisruptionBudget");
    const monitor = only(objs, "ServiceMonitor");
    const podLabels = deployment.spec.template.metadata.labels;

    assert.ok(matches(deployment.spec.selector.matchLabels, podLabels), "Deployment selector");
    assert.ok(matches(service.spec.selector, podLabels), "Service selects the pods");
    assert.ok(matches(pdb.spec.selector.matchLabels, podLabels), "PDB selects the pods");
    assert.ok(
      matches(monitor.spec.selector.matchLabels, service.metadata.labels),
      "ServiceMonitor selects the Service",
    );
    const servicePorts = service.spec.ports.map((p: Obj) => p.name);
    const containerPorts = deployment.spec.template.spec.containers[0].ports.map((p: Obj) =>
      p.name
    );
    for (const e of monitor.spec.endpoints) {
      assert.ok(servicePorts.includes(e.port), `ServiceMonitor port ${e.port} not on the Service`);
      const res = await appRoutes().request(e.path);
      await res.body?.cancel();
      assert.equal(res.status, 200, `ServiceMonitor path ${e.path} is not a route`);
    }
    for (const p of service.spec.ports) assert.ok(containerPorts.includes(p.targetPort));
  });
}

Deno.test("k8s overlays: distinct namespaces, every object in its overlay's namespace", async () => {
  const rendered = await Promise.all(OVERLAYS.map((o) => render(`${K8S}overlays/${o}`)));
  const namespaces = rendered.map((objs) => {
    const ns = new Set(objs.map((o) => o.metadata.namespace));
    assert.equal(ns.size, 1, `one namespace per overlay, got ${[...ns]}`);
    return [...ns][0];
  });
  assert.equal(new Set(namespaces).size, OVERLAYS.length, "overlays share a namespace");
  const [staging, production] = rendered.map((objs) => only(objs, "Deployment"));
  assert.ok(production!.spec.replicas > staging!.spec.replicas, "production has more replicas");
  const envs = rendered.map((objs) => only(objs, "ConfigMap").data.DATA_PROC_ENV);
  assert.deepEqual(envs, ["staging", "production"]);
});

Deno.test("k8s: the example admin Secret is valid and holds no real token", async () => {
  const text = await Deno.readTextFile(`${K8S}base/admin-secret.example.yaml`);
  const [secret] = parseYamlDocuments(text);
  validate(secret!);
  assert.equal(secret!.stringData.token, "replace-me");
  const [base] = parseYamlDocuments(await Deno.readTextFile(`${K8S}base/kustomization.yaml`));
  assert.ok(!base!.resources.includes("admin-secret.example.yaml"), "the example is applied");
});
