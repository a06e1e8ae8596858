/**
 * Structured JSON logger: one line per record on stderr, with `ts`, `level`, `component`,
 * `msg`, `env` (DATA_PROC_ENV, once the node has set it), the logger's base fields (e.g. `node_id`, `topic`, `partition`), the call's fields
 * (e.g. `key`), and `trace_id`/`span_id` while a traced stage is running. Logging never
 * throws: a value JSON cannot encode (BigInt, cycles) is written as a string.
 */
import { activeTraceIds } from "./tracing.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(component: string, fields?: LogFields): Logger;
}

let minLevel: LogLevel = "info";

let processFields: LogFields = {};

/** Fields written on every line of every logger, e.g. `{ env: "production" }` (DATA_PROC_ENV). */
export function setProcessLogFields(fields: LogFields): void {
  processFields = { ...fields };
}

/** Sets the lowest level written by every logger. */
export function setLogLevel(level: LogLevel): void {
  minLevel = level;
}

function errorFields(value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: value.message, stack: value.stack };
  }
  return value;
}

function encode(record: LogFields): string {
  try {
    return JSON.stringify(record, (_k, v) => typeof v === "bigint" ? v.toString() : v);
  } catch {
    const safe: LogFields = {};
    for (const [k, v] of Object.entries(record)) {
      try {
        JSON.stringify(v);
        safe[k] = v;
      } catch {
        safe[k] = String(v);
      }
    }
    return JSON.stringify(safe);
  }
}

/** Creates a logger for a component; records go to stderr as JSON lines. */
export function createLogger(component: string, base: LogFields = {}): Logger {
  const write = (level: LogLevel, msg: string, fields?: LogFields) => {
    if (ORDER[level] < ORDER[minLevel]) return;
    const record: LogFields = {
      ts: new Date().toISOString(),
      level,
      component,
      msg,
      ...processFields,
      ...base,
    };
    if (fields) {
      for (const [k, v] of Object.entries(fields)) record[k] = errorFields(v);
    }
    const ids = activeTraceIds();
    if (ids) Object.assign(record, ids);
    console.error(encode(record));
  };
  return {
    debug: (m, f) => write("debug", m, f),
    info: (m, f) => write("info", m, f),
    warn: (m, f) => write("warn", m, f),
    error: (m, f) => write("error", m, f),
    child: (sub, f) => createLogger(`${component}.${sub}`, { ...base, ...f }),
  };
}
