/**
 * The V8 flags of `deno task start` (deno.json), for the tools and tests that run main.ts as
 * a child process: the bench measures, and the tests exercise, the node with the heap it has
 * in production.
 */
export function startTaskV8Flags(): string[] {
  const config = JSON.parse(Deno.readTextFileSync(new URL("../deno.json", import.meta.url)));
  const task = String(config.tasks?.start ?? "");
  return task.split(/\s+/).filter((arg) => arg.startsWith("--v8-flags="));
}
