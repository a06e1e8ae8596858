/** `deno task start`: one node of 254carbon data processing. */
import { ConfigError, loadConfigFromEnv } from "./config/config.ts";
import { startNode } from "./supervisors/node_supervisor.ts";

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
  const onSignal = () => void node.stop();
  Deno.addSignalListener("SIGTERM", onSignal);
  Deno.addSignalListener("SIGINT", onSignal);
  const code = await node.finished;
  Deno.removeSignalListener("SIGTERM", onSignal);
  Deno.removeSignalListener("SIGINT", onSignal);
  return code;
}

if (import.meta.main) Deno.exit(await main());
