import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "./config.ts";

Deno.test("config with no variables set gives the local defaults", () => {
  const config = loadConfig({});
  assert.equal(config.DATA_PROC_HTTP_PORT, 8080);
  assert.equal(config.DATA_PROC_KAFKA_BOOTSTRAP, "127.0.0.1:9092");
  assert.deepEqual(config.DATA_PROC_BAR_WINDOWS, [{ name: "1m", ms: 60_000 }, {
    name: "1h",
    ms: 3_600_000,
  }]);
  assert.equal(config.DATA_PROC_TRACE_ENABLED, false);
});

Deno.test("config from config/default.env.example is valid", async () => {
  const text = await Deno.readTextFile(new URL("./default.env.example", import.meta.url));
  const env: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) env[match[1]!] = match[2]!;
  }
  const config = loadConfig(env);
  assert.equal(config.DATA_PROC_ADMIN_TOKEN, "local-admin-token");
});

Deno.test("config names every invalid variable and why", () => {
  const bad = {
    DATA_PROC_HTTP_PORT: "99999",
    DATA_PROC_BAR_WINDOWS: "1m,7x",
    DATA_PROC_KAFKA_BOOTSTRAP: "localhost",
    DATA_PROC_CLICKHOUSE_URL: "not a url",
    DATA_PROC_POSTGRES_DSN: "mysql://x",
    DATA_PROC_REDIS_URL: "http://127.0.0.1:6379",
    DATA_PROC_TRACE_ENABLED: "maybe",
    DATA_PROC_NORMALIZATION_MAX_BATCH_SIZE: "0",
    DATA_PROC_PROJECTION_REFRESH_INTERVAL: "-1",
    DATA_PROC_ALLOWED_LATENESS_MS: "abc",
    DATA_PROC_IDLE_CLOSE_MS: "0",
    DATA_PROC_REFDATA_REFRESH_MS: "1.5",
    DATA_PROC_ENV: "moon",
  };
  try {
    loadConfig(bad);
    assert.fail("expected a ConfigError");
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    for (const name of Object.keys(bad)) {
      assert.ok(err.message.includes(name), `${name} missing from:\n${err.message}`);
    }
    assert.equal(err.problems.length, Object.keys(bad).length);
    assert.match(err.message, /DATA_PROC_BAR_WINDOWS="1m,7x": .*bad: 7x/);
  }
});

Deno.test("config parses bar windows of seconds, minutes, hours and days", () => {
  const config = loadConfig({ DATA_PROC_BAR_WINDOWS: "30s, 5m,1d" });
  assert.deepEqual(config.DATA_PROC_BAR_WINDOWS.map((w) => w.ms), [30_000, 300_000, 86_400_000]);
});
