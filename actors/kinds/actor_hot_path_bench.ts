/**
 * The actor hot path alone, in process (`deno bench actors/`): batches of ticks through the
 * instrument adapter into XState machines, with a collect (what a flush takes) every tenth
 * batch. No Kafka or stores: this isolates the machine, aggregation and change-taking cost
 * that the end-to-end `deno task bench` mixes with I/O.
 */
import type { NormalizedTick } from "../../messages/normalized_tick.ts";
import type { KeyedEvent } from "../actor_kinds.ts";
import { instrumentAdapter } from "./instrument/machine.ts";
import { PARAMS, T0, tick } from "./instrument/test_fixtures.ts";

const KEYS = 1_000;
const BATCHES = 50;
const BATCH = 5;

Deno.bench("instrument actors: 1000 keys x 50 batches of 5 ticks, collect every 10th", () => {
  const adapter = instrumentAdapter(PARAMS); // 1m and 1h bars, 5 s lateness
  const keys = Array.from({ length: KEYS }, (_, k) => `INST-${k}`);
  const actors = keys.map((key) => adapter.spawn(key));
  let offset = 0;
  let rows = 0;
  for (let b = 0; b < BATCHES; b++) {
    for (let k = 0; k < KEYS; k++) {
      const events: KeyedEvent<NormalizedTick>[] = [];
      for (let i = 0; i < BATCH; i++) {
        const n = b * BATCH + i;
        const t = T0 + n * 15_000;
        events.push({
          offset: offset++,
          appendTimeMs: 0,
          clock: { clockMs: t - 15_000, quietMs: null },
          value: tick(`${keys[k]}-${n}`, t, 50 + (n % 17), 1 + (n % 3), keys[k]),
        });
      }
      adapter.apply(actors[k]!, events);
      if (b % 10 === 9) rows += adapter.collect(actors[k]!, keys[k]!).barRows.length;
    }
  }
  if (rows === 0) throw new Error("no bar rows collected");
});
