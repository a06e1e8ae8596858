/**
 * Runs a real node (`main.ts`) as a child process for tests that kill, stop and restart
 * nodes: the same binary and configuration path as `deno task start`.
 */
import { sleep } from "../timing/sleep.ts";
import { startTaskEnv, startTaskV8Flags } from "../tools/start_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

export interface NodeProcess {
  pid: number;
  /** The HTTP port the node listens on (read from its startup log). */
  port: number;
  url: string;
  /** Sends a signal and waits for the process to exit; returns its exit code. */
  kill(signal: "SIGTERM" | "SIGKILL"): Promise<number>;
  exited: Promise<number>;
  /** The node's stderr so far (JSON log lines). */
  log(): string;
}

export async function spawnNode(
  env: Record<string, string>,
  options: { timeoutMs?: number } = {},
): Promise<NodeProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...startTaskV8Flags(), MAIN],
    env: { ...env, ...startTaskEnv(), DATA_PROC_HTTP_PORT: env.DATA_PROC_HTTP_PORT ?? "0" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  let resolvePort: (p: number) => void = () => {};
  const portSeen = new Promise<number>((r) => (resolvePort = r));
  const pump = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      text += decoder.decode(chunk, { stream: true });
      const match = /"msg":"http listening"[^\n]*"port":(\d+)/.exec(text);
      if (match) resolvePort(Number(match[1]));
    }
  })();
  const exited = child.status.then(async (s) => {
    await pump;
    const dir = Deno.env.get("TEST_NODE_LOGS");
    if (dir) Deno.writeTextFileSync(`${dir}/node-${child.pid}.log`, text);
    return s.code;
  });
  const timeoutMs = options.timeoutMs ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const port = await Promise.race([
    portSeen,
    exited.then((code) => {
      throw new Error(`node exited with ${code} before listening:\n${text}`);
    }),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`node did not listen within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  const url = `http://127.0.0.1:${port}`;
  return {
    pid: child.pid,
    port,
    url,
    exited,
    log: () => text,
    kill: async (signal) => {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      return await exited;
    },
  };
}

/** Polls GET /ready until it answers 200. */
export async function waitReady(node: NodeProcess, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`${node.url}/ready`);
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`node ${node.pid} not ready within ${timeoutMs} ms:\n${node.log().slice(-3000)}`);
}

/** The value of one series (name and labels as /metrics writes them) on a node; 0 when absent. */
export async function metricValue(node: NodeProcess, series: string): Promise<number> {
  const text = await (await fetch(`${node.url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}
