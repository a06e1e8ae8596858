/**
 * The V8 flags and environment of `deno task start` (deno.json), for the tools and tests that
 * run main.ts as a child process: the bench measures, and the tests exercise, the node with the
 * heap and the allocator it has in production.
 */
function startTask(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  return String(config.tasks?.start ?? "").split(/\s+/).filter((arg) => arg.length > 0);
}

export function startTaskV8Flags(): string[] {
  return startTask().filter((arg) => arg.startsWith("--v8-flags="));
}

/** The `NAME=value` assignments before the task's command (they override the caller's). */
export function startTaskEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const word of startTask()) {
    const assignment = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(word);
    if (!assignment) break;
    env[assignment[1]!] = assignment[2]!;
  }
  return env;
}
