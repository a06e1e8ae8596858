/** `deno task start`: one node of 254carbon data processing. */
import { ConfigError, loadConfigFromEnv } from "./config/config.ts";
import { startNode } from "./app/node.ts";

async function main(): Promise<number> {
  let config;
  try {
    config = loadConfigFromEnv();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      return 2;
    }
    throw err;
  }
  const node = startNode(config);
  // The drain is bounded: past DATA_PROC_SHUTDOWN_TIMEOUT_MS the node exits anyway (what it
  // did not commit is redone by the next owner), before an orchestrator's SIGKILL would.
  let deadline: ReturnType<typeof setTimeout> | undefined;
  const onSignal = () => {
    deadline ??= setTimeout(() => {
      console.error(
        `shutdown: drain still running after DATA_PROC_SHUTDOWN_TIMEOUT_MS=${config.DATA_PROC_SHUTDOWN_TIMEOUT_MS}; exiting`,
      );
      Deno.exit(1);
    }, config.DATA_PROC_SHUTDOWN_TIMEOUT_MS);
    void node.stop();
  };
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  const code = await node.finished;
  clearTimeout(deadline);
  Deno.removeSignalListener("SIGTERM", onSignal);
  Deno.removeSignalListener("SIGINT", onSignal);
  return code;
}

if (import.meta.main) Deno.exit(await main());
