import assert from "node:assert/strict";
import { type AnyActorRef, createActor, createMachine } from "xstate";
import { persistedSnapshot } from "./key_actor.ts";
import { withQuickRestore } from "./machine_restore.ts";
import { instrumentAdapter, instrumentMachine } from "./kinds/instrument/machine.ts";
import { at, ID, MIN, PARAMS, SEC, T0, tick } from "./kinds/instrument/test_fixtures.ts";

const json = (value: unknown) => JSON.parse(JSON.stringify(value));

function events(from: number, count: number) {
  return Array.from({ length: count }, (_, i) => {
    const t = T0 + (from + i) * 20 * SEC;
    return {
      offset: from + i,
      appendTimeMs: 0,
      clock: at(t),
      value: tick(`e${from + i}`, t, 10 + i),
    };
  });
}

/** What an actor shows, then what it emits and stores after more events, a clock and a collect. */
function observe(actor: AnyActorRef) {
  const emitted: unknown[] = [];
  actor.on("*", (e: unknown) => emitted.push(json(e)));
  const snapshot = actor.getSnapshot();
  const shown = {
    value: snapshot.value,
    status: snapshot.status,
    context: json(snapshot.context),
    nodes: snapshot._nodes.map((n: { id: string }) => n.id),
    children: snapshot.children,
    historyValue: snapshot.historyValue,
  };
  actor.send({
    type: "EVENTS",
    inputs: events(10, 6).map((e) => ({ tick: e.value, clock: e.clock })),
  });
  actor.send({ type: "CLOCK", clock: at(T0 + 10 * MIN) });
  actor.send({ type: "COLLECT" });
  return {
    shown,
    emitted,
    after: json(persistedSnapshot(actor)),
    value: actor.getSnapshot().value,
  };
}

Deno.test("a quick restore gives the machine XState's own restore gives, and it works alike", () => {
  const adapter = instrumentAdapter(PARAMS);
  const original = adapter.spawn(ID, undefined, 0);
  adapter.apply(original, events(0, 8)); // closed and open bars, dedup ids, the latest price
  adapter.collect(original, ID);
  const stored = json(persistedSnapshot(original));
  adapter.stop(original);
  const input = { instrumentId: ID, params: PARAMS };
  const quick = createActor(withQuickRestore(instrumentMachine), { input, snapshot: json(stored) });
  const xstate = createActor(instrumentMachine, { input, snapshot: json(stored) });
  const seen = [observe(quick.start()), observe(xstate.start())];
  assert.ok((seen[1]!.emitted as { type: string }[]).some((e) => e.type === "changes"));
  assert.deepEqual(seen[0], seen[1]);
  quick.stop();
  xstate.stop();
});

Deno.test("a snapshot with history goes through XState's own restore", () => {
  const machine = createMachine({
    id: "h",
    initial: "on",
    states: {
      on: {
        initial: "low",
        states: { low: { on: { UP: "high" } }, high: {}, last: { type: "history" } },
        on: { OFF: "off" },
      },
      off: { on: { ON: "on.last" } },
    },
  });
  const actor = createActor(machine).start();
  actor.send({ type: "UP" });
  actor.send({ type: "OFF" });
  const stored = json(actor.getPersistedSnapshot());
  actor.stop();
  assert.notDeepEqual(stored.historyValue, {});
  const restored = createActor(withQuickRestore(machine), { snapshot: stored }).start();
  restored.send({ type: "ON" });
  // The history state remembers "high" only if its value was revived into state nodes.
  assert.deepEqual(restored.getSnapshot().value, { on: "high" });
  restored.stop();
});
