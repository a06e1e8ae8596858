/**
 * The operator doc's examples work from a fresh shell: its TOKEN line, run with an empty
 * environment from the checkout, yields the admin token a node started by `make start` or
 * docker-compose.yml has, and every admin curl example sends that token.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { loadConfig } from "../config/config.ts";

const REPO = new URL("../", import.meta.url).pathname;

function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  return env;
}

Deno.test("operator_http.md's TOKEN, from a fresh shell, is the token make start and compose use", async () => {
  const doc = await Deno.readTextFile(`${REPO}docs/operator_http.md`);
  const tokenLine = doc.split("\n").find((l) => l.startsWith("TOKEN="));
  assert.ok(tokenLine, "no TOKEN= line in docs/operator_http.md");
  const out = await new Deno.Command("bash", {
    args: ["-c", `${tokenLine}\nprintf %s "$TOKEN"`],
    cwd: REPO,
    clearEnv: true,
    env: { PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    stdout: "piped",
  }).output();
  const token = new TextDecoder().decode(out.stdout);
  assert.notEqual(token, "", "an empty token gets 401");

  const local = loadConfig(
    parseEnvFile(await Deno.readTextFile(`${REPO}config/default.env.example`)),
  );
  assert.equal(token, local.DATA_PROC_ADMIN_TOKEN, "make start's node has another token");
  const compose = parse(await Deno.readTextFile(`${REPO}docker-compose.yml`), { merge: true });
  const composeToken = String(compose.services.node.environment.DATA_PROC_ADMIN_TOKEN)
    .replace(/^\$\{DATA_PROC_ADMIN_TOKEN:-(.*)\}$/, "$1");
  assert.equal(token, composeToken, "docker-compose.yml's node has another token");

  // Every admin call in the examples sends it.
  const adminCalls = doc.split("\n").filter((l) => /curl .*-X POST/.test(l));
  assert.ok(adminCalls.length > 0);
  for (const [i, line] of doc.split("\n").entries()) {
    if (!/curl .*-X POST/.test(line)) continue;
    const call = doc.split("\n").slice(i, i + 3).join("\n");
    assert.match(call, /Authorization: Bearer \$TOKEN/, `no token in: ${line}`);
  }
});

Deno.test("the README's PATH line, from a fresh shell in the checkout, finds the Deno make installed", async () => {
  const readme = await Deno.readTextFile(`${REPO}README.md`);
  const pathLine = /`(export PATH=\$PWD\/\.tools\/[^`]+)`/.exec(readme)?.[1];
  assert.ok(pathLine, "README.md does not say how to reach the Deno in .tools/");
  const installed = `${REPO}.tools/node_modules/.bin/deno`;
  // Only when make installed Deno here (no `deno` on the machine's PATH); else nothing to find.
  if (!(await Deno.stat(installed).then(() => true, () => false))) return;
  const out = await new Deno.Command("bash", {
    args: ["-c", `${pathLine}\ndeno --version`],
    cwd: REPO,
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin", HOME: Deno.env.get("HOME") ?? "/tmp" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.match(text, /^deno \d/);
});
