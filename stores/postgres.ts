/** PostgreSQL client factory (porsager/postgres). */
import postgres from "postgres";

export type Sql = postgres.Sql;

export function createPostgres(dsn: string, options: { max?: number } = {}): Sql {
  return postgres(dsn, {
    max: options.max ?? 4,
    onnotice: () => {},
    connect_timeout: 5,
    types: {},
  });
}
