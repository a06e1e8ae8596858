/** ClickHouse client factory and small helpers that work on 18.16 and current servers. */
import { type ClickHouseClient, createClient } from "@clickhouse/client";

export type { ClickHouseClient };

export function createClickHouse(url: string): ClickHouseClient {
  return createClient({
    url,
    request_timeout: 30_000,
    compression: { request: false, response: false },
    // 18.16 closes idle keep-alive sockets after 3 s; a reused dead socket fails with EPIPE.
    keep_alive: { enabled: false },
    // 18.16 rejects unknown settings, so none are sent by default.
    clickhouse_settings: {},
  });
}

/** Runs a SELECT and returns its rows (64-bit integers come back as strings). */
export async function queryRows<T>(client: ClickHouseClient, query: string): Promise<T[]> {
  const result = await client.query({ query, format: "JSONEachRow" });
  return await result.json<T>();
}

/** Inserts rows with an explicit format (18.16 needs it). */
export async function insertRows(
  client: ClickHouseClient,
  table: string,
  rows: readonly Record<string, unknown>[],
): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table, values: rows as Record<string, unknown>[], format: "JSONEachRow" });
}
