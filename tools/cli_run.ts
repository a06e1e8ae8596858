/**
 * The shared entry point of every `deno task` tool: runs a tool's `main`, maps its outcome
 * to an exit code, and turns bad arguments or configuration into a clear message.
 *
 * Exit codes (one scheme for every tool, README "Operating it"): 0 clean, 1 problems found,
 * 2 bad arguments or configuration, 3 the tool itself failed (a store unreachable, a query
 * error, ...). `--help` prints usage, exits 0 and touches nothing.
 */
import { ConfigError } from "../config/config.ts";
import { UsageError } from "./cli_args.ts";

export const EXIT_CLEAN = 0;
export const EXIT_FOUND = 1;
export const EXIT_USAGE = 2;
export const EXIT_FAILED = 3;

/** Runs `main(args)` and returns the exit code; never throws. */
export async function runCli(
  tool: string,
  main: (args: string[]) => Promise<number>,
  args: string[],
): Promise<number> {
  try {
    return await main(args);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${tool}: ${err.message}\nRun 'deno task ${tool} --help' for usage.`);
      return EXIT_USAGE;
    }
    if (err instanceof ConfigError) {
      console.error(`${tool}: ${err.message}`);
      return EXIT_USAGE;
    }
    const message = err instanceof Error ? err.message : String(err);
    console.error(`${tool}: failed: ${message}`);
    return EXIT_FAILED;
  }
}

/** Writes one progress line to stderr (stdout stays for the report). */
export function progress(tool: string, message: string): void {
  console.error(`${tool}: ${message}`);
}
