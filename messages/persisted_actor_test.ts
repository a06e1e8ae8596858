import assert from "node:assert/strict";
import { historyEntries, isPersistedActor, PersistedActor } from "./persisted_actor.ts";

const stored = () => ({
  kind: "instrument",
  key: "INST-0001",
  partition: 2,
  offset: 41,
  machine: { status: "active", value: "open", context: { applied: 3 }, children: {} },
  history: [{ offset: 41, event_id: "e1", price: 10.5 }],
  restarts: 0,
  saved_at_ms: 1_800_000_000_000,
});

// Each changes one thing of a valid snapshot; `true` when the schema accepts it.
const VARIANTS: [string, (v: Record<string, unknown>) => void, boolean][] = [
  ["as stored", () => {}, true],
  ["offset -1 (nothing applied)", (v) => (v.offset = -1), true],
  ["no history", (v) => (v.history = []), true],
  ["offset -2", (v) => (v.offset = -2), false],
  ["partition 1.5", (v) => (v.partition = 1.5), false],
  ["offset past 2^53", (v) => (v.offset = 2 ** 60), false],
  ["negative partition", (v) => (v.partition = -1), false],
  ["key missing", (v) => delete v.key, false],
  ["kind a number", (v) => (v.kind = 1), false],
  ["machine status unknown", (v) => ((v.machine as { status: string }).status = "sleeping"), false],
  ["machine without context", (v) => delete (v.machine as { context?: unknown }).context, false],
  ["context an array", (v) => ((v.machine as { context: unknown }).context = []), false],
  ["machine null", (v) => (v.machine = null), false],
  ["history an object", (v) => (v.history = {}), false],
  ["history of numbers", (v) => (v.history = [1]), false],
  ["history by column", (v) => (v.history = { fields: ["offset"], columns: [[40, 41]] }), true],
  ["history columns of two lengths", (v) => (v.history = {
    fields: ["offset", "event_id"],
    columns: [[41], []],
  }), false],
  [
    "history with a column too few",
    (v) => (v.history = { fields: ["a", "b"], columns: [[1]] }),
    false,
  ],
  [
    "history with a field not a string",
    (v) => (v.history = { fields: [1], columns: [[1]] }),
    false,
  ],
  ["restarts -1", (v) => (v.restarts = -1), false],
  ["saved_at_ms a string", (v) => (v.saved_at_ms = "now"), false],
  ["an extra field (the schema drops it)", (v) => (v.extra = 1), true],
];

Deno.test("the fast check of a stored snapshot never accepts what the schema rejects", () => {
  for (const [name, change, schemaAccepts] of VARIANTS) {
    const value = stored() as Record<string, unknown>;
    change(value);
    const json = JSON.parse(JSON.stringify(value));
    assert.equal(PersistedActor.safeParse(json).success, schemaAccepts, name);
    if (isPersistedActor(json)) assert.ok(schemaAccepts, `fast check accepted: ${name}`);
  }
  assert.ok(isPersistedActor(stored()), "accepts what the runtime stores");
});

Deno.test("a history stored by column reads back as the entries, oldest first", () => {
  const stored = { fields: ["offset", "event_id"], columns: [[40, 41], ["e0", "e1"]] };
  assert.deepEqual(historyEntries(stored), [
    { offset: 40, event_id: "e0" },
    { offset: 41, event_id: "e1" },
  ]);
  assert.deepEqual(historyEntries({ fields: ["offset"], columns: [[]] }), []);
  const older = [{ offset: 41, event_id: "e1" }];
  assert.equal(historyEntries(older), older, "entries stored as objects are read as they are");
});
