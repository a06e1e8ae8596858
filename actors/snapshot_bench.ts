/**
 * What a stored snapshot costs per instrument actor, in process (`deno bench actors/`): the
 * flush serialising 2,500 dirty actors' snapshots, and a new owner reading them back (a
 * handoff or a revive). Each actor has applied 40 ticks, so its history ring is full. The
 * bytes per snapshot are printed once.
 */
import type { NormalizedTick } from "../messages/normalized_tick.ts";
import { isPersistedActor, type PersistedActor } from "../messages/persisted_actor.ts";
import type { KeyedEvent } from "./actor_kinds.ts";
import { KeyActor } from "./key_actor.ts";
import { instrumentAdapter } from "./kinds/instrument/machine.ts";
import { PARAMS, T0, tick } from "./kinds/instrument/test_fixtures.ts";

const ACTORS = 2_500;
const TICKS = 40;
const HISTORY = 20;

const adapter = instrumentAdapter(PARAMS);
const actors = Array.from({ length: ACTORS }, (_, k) => {
  const key = `INST-${k}`;
  const actor = new KeyActor(adapter, key, 0, { historySize: HISTORY, nowMs: 0 });
  for (let i = 0; i < TICKS; i++) {
    const t = T0 + i * 1_000;
    const event: KeyedEvent<NormalizedTick> = {
      offset: k * TICKS + i,
      appendTimeMs: 0,
      clock: { clockMs: t - 1_000, quietMs: null },
      value: tick(`${key}-${i}`, t, 50 + (i % 17), 1 + (i % 3), key),
    };
    actor.enqueue(event);
  }
  actor.drain(0);
  actor.collect();
  return actor;
});
const stored = actors.map((a) => JSON.stringify(a.persist(0)));
const bytes = stored.reduce((sum, s) => sum + s.length, 0) / ACTORS;
console.log(`snapshot: ${Math.round(bytes)} bytes per instrument actor (${HISTORY} events kept)`);

Deno.bench(`serialise ${ACTORS} instrument snapshots`, () => {
  for (const actor of actors) JSON.stringify(actor.persist(0));
});

Deno.bench(`read back and revive ${ACTORS} instrument snapshots`, () => {
  for (const value of stored) {
    const persisted = JSON.parse(value) as PersistedActor;
    if (!isPersistedActor(persisted)) throw new Error("not a stored actor");
    const actor = new KeyActor(adapter, persisted.key, 0, {
      historySize: HISTORY,
      nowMs: 0,
      persisted,
    });
    actor.stop();
  }
});
