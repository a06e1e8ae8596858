/**
 * Container health probe (the image has no curl): exits 0 when `GET <path>` on this node
 * answers 2xx within 4 s, else 1. `deno run deploy/healthcheck.ts /health` (or `/ready`);
 * the port is DATA_PROC_HTTP_PORT (default 8080), as the node reads it.
 */
export async function probe(path: string, port: string): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      signal: AbortSignal.timeout(4000),
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  const path = Deno.args[0] ?? "/health";
  const port = Deno.env.get("DATA_PROC_HTTP_PORT") || "8080";
  Deno.exit(await probe(path, port) ? 0 : 1);
}
