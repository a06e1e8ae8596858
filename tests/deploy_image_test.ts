/**
 * The image (Dockerfile), checked without a Docker engine: what it is built from and how, and
 * its health probe (deploy/healthcheck.ts) run for real against a listening server.
 */
import assert from "node:assert/strict";

const REPO = new URL("../", import.meta.url).pathname;
const PROBE = `${REPO}deploy/healthcheck.ts`;

async function runProbe(path: string, port: number): Promise<number> {
  const out = await new Deno.Command(Deno.execPath(), {
    // The same flags as the Dockerfile's HEALTHCHECK.
    args: [
      "run",
      "--no-config",
      "--allow-net=127.0.0.1",
      "--allow-env=DATA_PROC_HTTP_PORT",
      PROBE,
      path,
    ],
    clearEnv: true,
    env: { DATA_PROC_HTTP_PORT: String(port) },
    stdout: "null",
    stderr: "piped",
  }).output();
  return out.code;
}

Deno.test("the health probe passes on 2xx and fails on 503 or when nothing listens", async () => {
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/health") return Response.json({ status: "ok" });
    return Response.json({ status: "not_ready" }, { status: 503 });
  });
  const port = server.addr.port;
  try {
    assert.equal(await runProbe("/health", port), 0);
    assert.equal(await runProbe("/ready", port), 1);
  } finally {
    await server.shutdown();
  }
  assert.equal(await runProbe("/health", port), 1, "nothing listens any more");
});

Deno.test("the Dockerfile installs from the lock file, runs as non-root and checks /health", async () => {
  const dockerfile = await Deno.readTextFile(`${REPO}Dockerfile`);
  const lines = dockerfile.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
  assert.match(lines[0]!, /^FROM denoland\/deno:\d+\.\d+\.\d+$/);
  assert.ok(lines.some((l) => /RUN deno install --frozen/.test(l)), "deno install --frozen");
  assert.ok(lines.some((l) => /deno cache main\.ts/.test(l)), "cache warmed for main.ts");
  const users = lines.filter((l) => l.startsWith("USER "));
  assert.deepEqual(users, ["USER deno"], "runs as the base image's non-root user");
  assert.ok(lines.some((l) => l.includes("deploy/healthcheck.ts") && l.includes("/health")));
  assert.equal(lines.at(-1), 'CMD ["task", "start"]');

  // The lock file and the probe go into the image; tools and clutter do not.
  const ignored = (await Deno.readTextFile(`${REPO}.dockerignore`)).split("\n");
  for (const path of [".tools", "node_modules", ".git"]) assert.ok(ignored.includes(path), path);
  for (const path of ["deno.lock", "deploy/healthcheck.ts", "main.ts", "config"]) {
    assert.ok(!ignored.includes(path), `${path} must be in the image`);
  }
});
