/**
 * A small third actor kind for tests: counts the events of each key and projects the count.
 * An event marked `poison` makes its machine throw (to test crash handling).
 */
import { assign, createActor, emit, setup } from "xstate";
import { z } from "zod";
import type { KindAdapter } from "../actors/actor_kinds.ts";
import type { ActorKindDefinition } from "../actors/kinds/kind.ts";

const CountEvent = z.object({ key: z.string().min(1), poison: z.boolean().optional() });
type CountEvent = z.infer<typeof CountEvent>;

interface CounterContext {
  count: number;
  version: number;
  changed: boolean;
}

const counterMachine = setup({
  types: {
    context: {} as CounterContext,
    input: {} as { versionBase: number },
    events: {} as
      | { type: "EVENTS"; n: number; poison: boolean }
      | { type: "RESET"; versionBase: number }
      | { type: "COLLECT" },
    emitted: {} as { type: "changed"; count: number; version: number },
  },
}).createMachine({
  context: ({ input }) => ({ count: 0, version: input.versionBase, changed: false }),
  on: {
    EVENTS: {
      actions: assign(({ context, event }) => {
        if (event.poison) throw new Error("counter cannot digest a poison event");
        return {
          count: context.count + event.n,
          version: context.version + event.n,
          changed: true,
        };
      }),
    },
    RESET: {
      actions: assign(({ event }) => ({ count: 0, version: event.versionBase, changed: true })),
    },
    // The machine hands its change to the flush and forgets it.
    COLLECT: {
      guard: ({ context }) => context.changed,
      actions: [
        emit(({ context }) => ({
          type: "changed",
          count: context.count,
          version: context.version,
        })),
        assign({ changed: false }),
      ],
    },
  },
});

function counterAdapter(): KindAdapter<CountEvent> {
  const context = (actor: { getSnapshot(): { context: unknown } }) =>
    actor.getSnapshot().context as CounterContext;
  // Emitted within `send`: the slot holds what the last COLLECT emitted.
  let changed: { count: number; version: number } | null = null;
  return {
    kind: "counter",
    spawn(_key, persisted, versionBase) {
      const actor = createActor(counterMachine, {
        input: { versionBase: versionBase ?? 0 },
        ...(persisted ? { snapshot: persisted as never } : {}),
      });
      actor.on("changed", (e) => changed = e);
      return actor.start();
    },
    apply(actor, events) {
      actor.send({
        type: "EVENTS",
        n: events.length,
        poison: events.some((e) => e.value.poison === true),
      });
      return [];
    },
    collect(actor, key) {
      const out = { projections: [], barRows: [], curveRows: [], messages: [] } as ReturnType<
        KindAdapter<CountEvent>["collect"]
      >;
      changed = null;
      actor.send({ type: "COLLECT" });
      const taken = changed as { count: number; version: number } | null;
      if (taken === null) return out;
      out.projections.push({
        key: `projection:counter:${key}`,
        order: 0,
        version: taken.version,
        value: JSON.stringify({ key, count: taken.count, version: taken.version }),
      });
      return out;
    },
    nextCloseAt: () => null,
    windowClosed: () => false,
    advance: () => {},
    reset: (actor, versionBase) => actor.send({ type: "RESET", versionBase }),
    maxVersion: (actor) => context(actor).version,
    clockMs: () => null,
    summarize: (event) => ({ offset: event.offset }),
  };
}

export function counterKind(topic: string): ActorKindDefinition<CountEvent> {
  return {
    name: "counter",
    inputTopic: () => topic,
    schema: CountEvent,
    keyOf: (e) => e.key,
    adapter: counterAdapter,
    projectionKeys: (key) => [`projection:counter:${key}`],
    gold: { table: "counters", idColumn: "key", timeColumn: "event_time_ms" },
    replacedFrom: () => 0,
    goldComparison: { columns: "key", idOf: (row) => String(row.key), valuesOf: () => ({}) },
  };
}
