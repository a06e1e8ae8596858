/**
 * What one actor kind is, in one place: where its events come from, how they decode and to
 * which key, its machine (through its adapter), and what it owns in the sinks. The runtime,
 * the flush, replay, reset and HTTP consult a kind's definition instead of its name.
 */
import type { z } from "zod";
import type { KindAdapter } from "../actor_kinds.ts";
import type { WindowSpec } from "./instrument/aggregate.ts";

/** What a kind's machine takes from the node's configuration. */
export interface KindSettings {
  windows: readonly WindowSpec[];
  allowedLatenessMs: number;
}

/** The normalized topics, by role (stores/kafka.ts topicNames). */
export interface InputTopics {
  normalizedTicks: string;
  normalizedCurves: string;
}

/** A kind's table in the gold database: its key column and the time a replay cuts at. */
export interface GoldTable {
  table: string;
  idColumn: string;
  timeColumn: string;
}

export interface ActorKindDefinition<T = unknown> {
  readonly name: string;
  /** The normalized topic its events come from. */
  inputTopic(topics: InputTopics): string;
  readonly schema: z.ZodType<T>;
  /** A hand-written check of the schema's rules for the hot path (see decodeJson). */
  readonly fastCheck?: (value: unknown) => value is T;
  keyOf(value: T): string;
  adapter(settings: KindSettings): KindAdapter<T>;
  /** Its Redis projection keys, without the Redis prefix. */
  projectionKeys(key: string, settings: KindSettings): string[];
  readonly gold: GoldTable;
  /** Gold rows a replay from `fromTimeMs` writes again start at this time (0: all). */
  replacedFrom(fromTimeMs: number, settings: KindSettings): number;
  /** How a dry run compares gold rows: the columns it reads, a row's id, its values. */
  readonly goldComparison: {
    columns: string;
    idOf(row: Record<string, unknown>): string;
    valuesOf(row: Record<string, unknown>): Record<string, number>;
  };
}

/** A kind's settings from the node's configuration (bar windows, allowed lateness). */
export function kindSettings(config: {
  DATA_PROC_BAR_WINDOWS: readonly WindowSpec[];
  DATA_PROC_ALLOWED_LATENESS_MS: number;
}): KindSettings {
  return {
    windows: config.DATA_PROC_BAR_WINDOWS,
    allowedLatenessMs: config.DATA_PROC_ALLOWED_LATENESS_MS,
  };
}

/** What the projection store needs of a kind: its projection keys and its gold table. */
export function storedShape(kind: ActorKindDefinition, settings: KindSettings) {
  return {
    projectionKeys: (key: string) => kind.projectionKeys(key, settings),
    gold: kind.gold,
  };
}
