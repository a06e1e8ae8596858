import assert from "node:assert/strict";
import { persistedSnapshot } from "./key_actor.ts";
import { curveAdapter } from "./kinds/curve/machine.ts";
import { instrumentAdapter } from "./kinds/instrument/machine.ts";
import { at, PARAMS, T0, tick } from "./kinds/instrument/test_fixtures.ts";
import { generateCurvePoints } from "../tests/expected.ts";

Deno.test("the persisted snapshot is XState's own, without its walk of the context", () => {
  const adapter = instrumentAdapter(PARAMS);
  const actor = adapter.spawn("INST-0001", undefined, 0);
  const events = [0, 1, 2].map((i) => ({
    offset: i,
    appendTimeMs: 0,
    clock: at(T0 + i * 1000),
    value: tick(`e${i}`, T0 + i * 1000, 10 + i),
  }));
  adapter.apply(actor, events);
  adapter.collect(actor, "INST-0001");
  const ours = JSON.parse(JSON.stringify(persistedSnapshot(actor)));
  assert.deepEqual(ours, JSON.parse(JSON.stringify(actor.getPersistedSnapshot())));
  // And it restores the same machine.
  const restored = adapter.spawn("INST-0001", ours, 0);
  assert.deepEqual(
    JSON.parse(JSON.stringify(restored.getSnapshot().context)),
    JSON.parse(JSON.stringify(actor.getSnapshot().context)),
  );
  adapter.stop(actor);
  adapter.stop(restored);
});

Deno.test("a curve machine's persisted snapshot is XState's own too", () => {
  const adapter = curveAdapter();
  const points = generateCurvePoints({
    seed: 5,
    curves: 1,
    count: 50,
    startMs: T0,
    spreadMs: 60_000,
    asOfs: 2,
    tenors: 6,
    outOfOrderRatio: 0,
    duplicateRatio: 0,
  });
  const actor = adapter.spawn(points[0]!.curve_id, undefined, 0);
  adapter.apply(
    actor,
    points.map((value, offset) => ({ offset, appendTimeMs: 0, clock: at(null), value })),
  );
  assert.ok(JSON.stringify(persistedSnapshot(actor)).length > 1000);
  assert.deepEqual(
    JSON.parse(JSON.stringify(persistedSnapshot(actor))),
    JSON.parse(JSON.stringify(actor.getPersistedSnapshot())),
  );
  adapter.stop(actor);
});
