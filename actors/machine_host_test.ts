import assert from "node:assert/strict";
import { assign, setup } from "xstate";
import { MachineHost } from "./machine_host.ts";

const counter = setup({
  types: { context: {} as { n: number }, events: {} as { type: "ADD" } | { type: "BOOM" } },
  actions: {
    boom: () => {
      throw new Error("boom");
    },
  },
}).createMachine({
  context: { n: 0 },
  on: {
    ADD: { actions: assign({ n: ({ context }) => context.n + 1 }) },
    BOOM: { actions: "boom" },
  },
});

Deno.test("machines of one host share its system and each stops through it", () => {
  const host = new MachineHost();
  const a = host.start(counter, {});
  const b = host.start(counter, {});
  assert.equal(a.system, b.system);
  assert.equal(host.live, 2);
  a.send({ type: "ADD" });
  host.stop(a);
  assert.equal(a.getSnapshot().status, "stopped");
  assert.equal(host.live, 1);
  a.send({ type: "ADD" }); // ignored: stopped
  b.send({ type: "ADD" });
  b.send({ type: "ADD" });
  assert.equal(a.getSnapshot().context.n, 1);
  assert.equal(b.getSnapshot().context.n, 2);
  host.stop(b);
  assert.equal(host.live, 0);
});

Deno.test("a machine that throws shows it in its snapshot, and its host goes on", () => {
  const host = new MachineHost();
  const crashing = host.start(counter, {}, (actor) => actor.subscribe({ error: () => {} }));
  const neighbour = host.start(counter, {});
  crashing.send({ type: "BOOM" });
  assert.equal(crashing.getSnapshot().status, "error");
  assert.equal((crashing.getSnapshot().error as Error).message, "boom");
  host.stop(crashing); // already stopped by XState: still counted off once
  assert.equal(host.live, 1);
  neighbour.send({ type: "ADD" });
  assert.equal(neighbour.getSnapshot().context.n, 1);
  const next = host.start(counter, {});
  next.send({ type: "ADD" });
  assert.equal(next.getSnapshot().context.n, 1);
  host.stop(neighbour);
  host.stop(next);
  assert.equal(host.live, 0);
});

Deno.test("a host stops only its own actors", () => {
  const mine = new MachineHost();
  const other = new MachineHost();
  const actor = other.start(counter, {});
  assert.throws(() => mine.stop(actor), /not an actor of this host/);
  assert.equal(other.live, 1);
  other.stop(actor);
});
