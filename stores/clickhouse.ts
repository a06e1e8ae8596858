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

/**
 * Splits rows into insert blocks that each touch at most `maxPartitions` distinct partition
 * keys of the target table and hold at most `maxRows` rows: ClickHouse refuses a block that
 * touches more than `max_partitions_per_insert_block` partitions (100 by default). Rows are
 * grouped by partition in order of first appearance; each partition's rows keep their order.
 */
export function partitionBlocks<T>(
  rows: readonly T[],
  partitionOf: (row: T) => string,
  options: { maxPartitions: number; maxRows: number },
): T[][] {
  const { maxPartitions, maxRows } = options;
  if (!Number.isInteger(maxPartitions) || maxPartitions < 1) {
    throw new RangeError(
      `Cannot split inserts: maxPartitions must be an integer >= 1, got ${maxPartitions}`,
    );
  }
  if (!Number.isInteger(maxRows) || maxRows < 1) {
    throw new RangeError(`Cannot split inserts: maxRows must be an integer >= 1, got ${maxRows}`);
  }
  const byPartition = new Map<string, T[]>();
  for (const row of rows) {
    const key = partitionOf(row);
    const list = byPartition.get(key);
    if (list) list.push(row);
    else byPartition.set(key, [row]);
  }
  const blocks: T[][] = [];
  let block: T[] = [];
  let partitions = 0;
  for (const group of byPartition.values()) {
    for (let i = 0; i < group.length;) {
      if (block.length >= maxRows || partitions >= maxPartitions) {
        blocks.push(block);
        block = [];
        partitions = 0;
      }
      const take = Math.min(group.length - i, maxRows - block.length);
      for (const row of group.slice(i, i + take)) block.push(row);
      partitions += 1;
      i += take;
    }
  }
  if (block.length > 0) blocks.push(block);
  return blocks;
}
