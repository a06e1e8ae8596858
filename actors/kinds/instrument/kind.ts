/** The instrument kind: OHLCV bars per window and the latest price, from normalized ticks. */
import { isNormalizedTick, NormalizedTick } from "../../../messages/normalized_tick.ts";
import { instrumentAdapter } from "./machine.ts";
import type { ActorKindDefinition } from "../kind.ts";

export const instrumentKind: ActorKindDefinition<NormalizedTick> = {
  name: "instrument",
  inputTopic: (topics) => topics.normalizedTicks,
  schema: NormalizedTick,
  fastCheck: isNormalizedTick,
  keyOf: (tick) => tick.instrument_id,
  adapter: (settings) =>
    instrumentAdapter({
      windows: [...settings.windows],
      allowedLatenessMs: settings.allowedLatenessMs,
    }),
  projectionKeys: (key, settings) => [
    `projection:latest:${key}`,
    ...settings.windows.map((w) => `projection:bar:${w.name}:${key}`),
  ],
  gold: { table: "bars", idColumn: "instrument_id", timeColumn: "start_ms" },
  // Whole windows only: from the start of the largest window that holds the time.
  replacedFrom: (fromTimeMs, settings) => {
    if (fromTimeMs <= 0) return 0;
    const largest = Math.max(...settings.windows.map((w) => w.ms));
    return Math.floor(fromTimeMs / largest) * largest;
  },
  goldComparison: {
    columns: "resolution, start_ms, open, high, low, close, volume, vwap, count",
    idOf: (row) => `${row.resolution}|${row.start_ms}`,
    valuesOf: (row) => ({
      open: Number(row.open),
      high: Number(row.high),
      low: Number(row.low),
      close: Number(row.close),
      volume: Number(row.volume),
      vwap: Number(row.vwap),
      count: Number(row.count),
    }),
  },
};
