import assert from "node:assert/strict";
import { startTaskEnv, startTaskV8Flags } from "./start_flags.ts";

Deno.test("the start task's environment and V8 flags are read from deno.json, as the task runs them", () => {
  // glibc's malloc otherwise keeps up to 8 arenas per core for the node's threads: ~16 MiB more
  // peak RSS in `deno task bench --scenario throughput` (docs/benchmarks.md, session 12).
  assert.deepEqual(startTaskEnv(), { MALLOC_ARENA_MAX: "2" });
  assert.deepEqual(startTaskV8Flags(), [
    "--v8-flags=--max-old-space-size=1024,--max-semi-space-size=8",
  ]);
});
