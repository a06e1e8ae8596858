/**
 * The V8 heap of a node started with `--inspect=127.0.0.1:PORT`, measured after a forced
 * full GC through the inspector protocol (HeapProfiler.collectGarbage, then
 * Runtime.getHeapUsage): live objects only, no garbage waiting for the next GC. The bench
 * uses it for the bytes each live instrument actor costs.
 */

/** A free local port for `--inspect=127.0.0.1:PORT`. */
export function freeInspectorPort(): number {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  return port;
}

/** Bytes of reachable objects on the V8 heap after a full GC. */
export async function heapUsedAfterGc(port: number, timeoutMs = 60_000): Promise<number> {
  const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json() as {
    webSocketDebuggerUrl: string;
  }[];
  const url = list[0]?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  const ws = new WebSocket(url);
  const answers = new Map<number, (m: { result?: unknown; error?: unknown }) => void>();
  let nextId = 0;
  ws.onmessage = (e) => {
    const m = JSON.parse(String(e.data));
    if (typeof m.id === "number") answers.get(m.id)?.(m);
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const call = (method: string) =>
    new Promise<unknown>((resolve, reject) => {
      const id = ++nextId;
      answers.set(id, (m) =>
        m.error ? reject(new Error(JSON.stringify(m.error))) : resolve(m.result));
      ws.send(JSON.stringify({ id, method }));
    });
  try {
    await Promise.race([
      new Promise<void>((resolve, reject) => {
        ws.onopen = () => resolve();
        ws.onerror = () => reject(new Error(`cannot connect to ${url}`));
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error("inspector timeout")), timeoutMs);
      }),
    ]);
    await call("HeapProfiler.collectGarbage");
    const usage = await call("Runtime.getHeapUsage") as { usedSize: number };
    return usage.usedSize;
  } finally {
    clearTimeout(timer);
    ws.close();
  }
}
