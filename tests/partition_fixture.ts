/**
 * A partition supervisor of the instrument kind on partition 0 of the normalized ticks topic,
 * with 1m bars and 5 s lateness, for tests that drive one partition by hand.
 */
import { instrumentAdapter } from "../actors/kinds/instrument/machine.ts";
import { NormalizedTick } from "../messages/normalized_tick.ts";
import { createLogger } from "../observability/logger.ts";
import type { ActorStore } from "../stores/actor_store.ts";
import { PartitionSupervisor } from "../supervisors/partition_supervisor.ts";

export const PARTITION_TOPIC = "normalized.market.ticks.v1";

export const INSTRUMENT_PARAMS = {
  windows: [{ name: "1m", ms: 60_000 }],
  allowedLatenessMs: 5000,
};

export type PartitionOptionsOf = ConstructorParameters<
  typeof PartitionSupervisor<NormalizedTick>
>[0];

export function instrumentPartition(
  store: ActorStore,
  extra: Partial<PartitionOptionsOf> = {},
): PartitionSupervisor<NormalizedTick> {
  return new PartitionSupervisor({
    topic: PARTITION_TOPIC,
    partition: 0,
    epoch: 1,
    adapter: instrumentAdapter(INSTRUMENT_PARAMS),
    schema: NormalizedTick,
    keyOf: (t) => t.instrument_id,
    store,
    historySize: 5,
    now: () => Date.now(),
    logger: createLogger("test"),
    ...extra,
  });
}
