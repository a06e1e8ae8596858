/**
 * The one escaping helper for ClickHouse SQL values (18.16 has no query parameters).
 */
export function sqlString(value: string): string {
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** A finite number as a SQL literal; throws on NaN/Infinity so they never reach SQL. */
export function sqlNumber(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`Cannot use ${value} as a SQL number`);
  return String(value);
}

/** A database or table identifier; only word characters are allowed. */
export function sqlIdentifier(value: string): string {
  if (!/^\w+$/.test(value)) throw new RangeError(`Invalid SQL identifier: ${value}`);
  return value;
}
