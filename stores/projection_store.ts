/**
 * What is stored for one actor key outside its snapshot: its Redis projections and its
 * ClickHouse gold rows. Reset and replay read the highest version stored (their new
 * versions must start above it, whatever the actor in memory remembers) and, once their new
 * state is durable, remove what is older than it.
 */
import type { Config } from "../config/config.ts";
import { type ClickHouseClient, queryRows } from "./clickhouse.ts";
import type { Redis } from "./redis.ts";
import type { RedisKeys } from "./redis_keys.ts";
import { sqlIdentifier, sqlNumber, sqlString } from "./sql.ts";

/** What the store needs of an actor kind (actors/kinds/kind.ts storedShape). */
export interface StoredKind {
  /** Projection keys of one actor key, without the Redis prefix. */
  projectionKeys(key: string): string[];
  /** Its table in the gold database, key column, and the time a replay cuts at. */
  gold: { table: string; idColumn: string; timeColumn: string };
}

export interface ProjectionStoreDeps {
  config: Config;
  redis: Redis;
  clickhouse: ClickHouseClient;
  keys: RedisKeys;
}

/** Deletes each KEYS[i] whose JSON `version` is below ARGV[i] (or unreadable); returns the count. */
const DELETE_OLDER = `
local deleted = 0
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if current then
    local ok, decoded = pcall(cjson.decode, current)
    local version = nil
    if ok and type(decoded) == 'table' then version = tonumber(decoded.version) end
    if version == nil or version < tonumber(ARGV[i]) then
      redis.call('DEL', KEYS[i])
      deleted = deleted + 1
    end
  end
end
return deleted
`;

function goldTable(config: Config, kind: StoredKind): { table: string; id: string; time: string } {
  const gold = sqlIdentifier(config.DATA_PROC_CLICKHOUSE_GOLD_DB);
  return {
    table: `${gold}.${sqlIdentifier(kind.gold.table)}`,
    id: sqlIdentifier(kind.gold.idColumn),
    time: sqlIdentifier(kind.gold.timeColumn),
  };
}

/** Every Redis projection key of one actor key. */
export function projectionKeys(deps: ProjectionStoreDeps, kind: StoredKind, key: string): string[] {
  return kind.projectionKeys(key).map((suffix) => deps.keys.prefixed(suffix));
}

/** The highest version stored for each key in its Redis projections and gold rows (0: none). */
export async function storedMaxVersions(
  deps: ProjectionStoreDeps,
  kind: StoredKind,
  keys: readonly string[],
): Promise<Map<string, number>> {
  const max = new Map<string, number>();
  if (keys.length === 0) return max;
  const bump = (key: string, v: number) => {
    if (Number.isFinite(v)) max.set(key, Math.max(max.get(key) ?? 0, v));
  };
  const pairs = keys.flatMap((k) => projectionKeys(deps, kind, k).map((rk) => [k, rk] as const));
  const values = await deps.redis.mget(pairs.map(([, rk]) => rk));
  values.forEach((v, i) => {
    if (v === null) return;
    try {
      bump(pairs[i]![0], Number(JSON.parse(v).version));
    } catch {
      // not JSON: whatever is written next replaces it
    }
  });
  const { table, id } = goldTable(deps.config, kind);
  const rows = await queryRows<{ id: string; v: string }>(
    deps.clickhouse,
    `SELECT ${id} AS id, max(version) AS v FROM ${table}
     WHERE ${id} IN (${keys.map(sqlString).join(", ")}) GROUP BY ${id}`,
  );
  for (const row of rows) bump(row.id, Number(row.v));
  return max;
}

export interface DeletedOlder {
  redis_keys: string[];
  redis_deleted: number;
  clickhouse_mutations: string[];
}

/**
 * Removes each key's projections and gold rows older than its version base (a reset's or a
 * replay's), keeping everything written at or above it. Gold rows are limited to those at or
 * after `fromMs` (bar start or curve point time): a replay from a time leaves older ones.
 * ClickHouse applies the mutation asynchronously, usually within seconds.
 */
export async function deleteOlder(
  deps: ProjectionStoreDeps,
  kind: StoredKind,
  bases: ReadonlyMap<string, number>,
  fromMs = 0,
): Promise<DeletedOlder> {
  if (bases.size === 0) return { redis_keys: [], redis_deleted: 0, clickhouse_mutations: [] };
  const redisKeys: string[] = [];
  const redisBases: string[] = [];
  for (const [key, base] of bases) {
    for (const rk of projectionKeys(deps, kind, key)) {
      redisKeys.push(rk);
      redisBases.push(String(base));
    }
  }
  const deleted = Number(
    await deps.redis.eval(DELETE_OLDER, redisKeys.length, ...redisKeys, ...redisBases),
  );
  const { table, id, time } = goldTable(deps.config, kind);
  const older = [...bases].map(([key, base]) =>
    `(${id} = ${sqlString(key)} AND version < ${sqlNumber(base)})`
  ).join(" OR ");
  const where = `${fromMs > 0 ? `${time} >= ${sqlNumber(fromMs)} AND ` : ""}(${older})`;
  // A mutation rewrites every data part it touches: issue one only when some row is stale,
  // i.e. its newest version (FINAL) is below the base. Rows merely superseded by a newer
  // version are what ReplacingMergeTree drops by itself.
  const [stale] = await queryRows<{ n: string }>(
    deps.clickhouse,
    `SELECT count() AS n FROM ${table} FINAL WHERE ${where}`,
  );
  if (Number(stale?.n ?? 0) === 0) {
    return { redis_keys: redisKeys, redis_deleted: deleted, clickhouse_mutations: [] };
  }
  const mutation = `ALTER TABLE ${table} DELETE WHERE ${where}`;
  await deps.clickhouse.command({ query: mutation });
  return { redis_keys: redisKeys, redis_deleted: deleted, clickhouse_mutations: [mutation] };
}
