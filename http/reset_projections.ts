/**
 * After an actor reset, the key's old projections go: its Redis projections
 * (`projection:latest:{id}` and `projection:bar:{res}:{id}` per configured window, or
 * `projection:curve:{id}`) and its ClickHouse gold rows. Only what is older than the reset
 * is removed (version < the new version base), so anything the reset actor already wrote
 * again survives: the Redis side is one Lua call comparing versions, the ClickHouse side a
 * mutation with `version < base` (applied asynchronously by ClickHouse, usually in seconds).
 */
import type { ActorKind } from "../actors/actor_kinds.ts";
import type { Config } from "../config/config.ts";
import type { ClickHouseClient } from "../stores/clickhouse.ts";
import type { Redis } from "../stores/redis.ts";
import type { RedisKeys } from "../stores/redis_keys.ts";
import { sqlIdentifier, sqlNumber, sqlString } from "../stores/sql.ts";

/** Deletes each KEYS[i] whose JSON `version` is below ARGV[1] (or unreadable); returns the count. */
const DELETE_OLDER = `
local base = tonumber(ARGV[1])
local deleted = 0
for i = 1, #KEYS do
  local current = redis.call('GET', KEYS[i])
  if current then
    local ok, decoded = pcall(cjson.decode, current)
    local version = nil
    if ok and type(decoded) == 'table' then version = tonumber(decoded.version) end
    if version == nil or version < base then
      redis.call('DEL', KEYS[i])
      deleted = deleted + 1
    end
  end
end
return deleted
`;

export interface ResetProjectionsDeps {
  config: Config;
  redis: Redis;
  clickhouse: ClickHouseClient;
  keys: RedisKeys;
}

export interface ClearedProjections {
  redis_keys: string[];
  redis_deleted: number;
  clickhouse_mutations: string[];
}

export async function clearProjections(
  deps: ResetProjectionsDeps,
  kind: ActorKind,
  key: string,
  versionBase: number,
): Promise<ClearedProjections> {
  const redisKeys = deps.keys.projectionsOf(
    kind,
    key,
    deps.config.DATA_PROC_BAR_WINDOWS.map((w) => w.name),
  );
  const deleted = Number(
    await deps.redis.eval(DELETE_OLDER, redisKeys.length, ...redisKeys, String(versionBase)),
  );
  const gold = sqlIdentifier(deps.config.DATA_PROC_CLICKHOUSE_GOLD_DB);
  const mutations = kind === "instrument"
    ? [
      `ALTER TABLE ${gold}.bars DELETE WHERE instrument_id = ${sqlString(key)} AND version < ${
        sqlNumber(versionBase)
      }`,
    ]
    : [
      `ALTER TABLE ${gold}.curves DELETE WHERE curve_id = ${sqlString(key)} AND version < ${
        sqlNumber(versionBase)
      }`,
    ];
  for (const query of mutations) await deps.clickhouse.command({ query });
  return { redis_keys: redisKeys, redis_deleted: deleted, clickhouse_mutations: mutations };
}
