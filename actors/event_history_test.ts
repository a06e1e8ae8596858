import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { EventHistory } from "./event_history.ts";

const entry = (n: number) => ({ offset: n, event_id: `e-${n}`, price: n + 0.5, size: n / 10 });

Deno.test("keeps the newest entries up to its capacity, oldest first, as pushed", () => {
  const history = new EventHistory(3);
  assertEquals(history.toArray(), []);
  for (let n = 1; n <= 7; n++) history.push(entry(n));
  assertEquals(history.toArray(), [entry(5), entry(6), entry(7)]);
});

Deno.test("starts from stored entries, keeping the newest that fit", () => {
  const stored = [1, 2, 3, 4].map(entry);
  assertEquals(new EventHistory(2, stored).toArray(), [entry(3), entry(4)]);
  assertEquals(new EventHistory(10, stored).toArray(), stored);
  assertEquals(new EventHistory(0, stored).toArray(), []);
});

Deno.test("an entry of another shape keeps every entry, as objects from then on", () => {
  const history = new EventHistory(3, [entry(1), entry(2)]);
  const other = { offset: 3, event_id: "e-3", price: null, size: 0.3 }; // price not a number
  const extra = { ...entry(4), note: "x" };
  history.push(other);
  history.push(extra);
  assertEquals(history.toArray(), [entry(2), other, extra]);
  history.push(entry(5));
  assertEquals(history.toArray(), [other, extra, entry(5)]);
});

Deno.test("a missing field is another shape, not a stored undefined", () => {
  const history = new EventHistory(2, [{ a: 1, b: "x" }]);
  history.push({ a: 2, c: "y" });
  assertEquals(history.toArray(), [{ a: 1, b: "x" }, { a: 2, c: "y" }]);
});

Deno.test("clear empties it, and the next entry lays it out again", () => {
  const history = new EventHistory(2, [entry(1), { other: true }]);
  history.clear();
  assertEquals(history.toArray(), []);
  history.push({ x: 1 });
  history.push({ x: 2 });
  history.push({ x: 3 });
  assertEquals(history.toArray(), [{ x: 2 }, { x: 3 }]);
});

Deno.test("is stored by column, and starts again from its columns as it was", () => {
  const history = new EventHistory(3);
  for (let n = 1; n <= 5; n++) history.push(entry(n));
  const stored = history.toStored();
  assertEquals(stored, {
    fields: ["offset", "event_id", "price", "size"],
    columns: [[3, 4, 5], ["e-3", "e-4", "e-5"], [3.5, 4.5, 5.5], [0.3, 0.4, 0.5]],
  });
  const again = new EventHistory(3, JSON.parse(JSON.stringify(stored)));
  assertEquals(again.toArray(), [entry(3), entry(4), entry(5)]);
  again.push(entry(6));
  assertEquals(again.toArray(), [entry(4), entry(5), entry(6)]);
  assertEquals(new EventHistory(2, stored).toArray(), [entry(4), entry(5)], "the newest that fit");
});

Deno.test("a history holding objects is stored as objects", () => {
  const history = new EventHistory(2, [entry(1), { other: true }]);
  assertEquals(history.toStored(), [entry(1), { other: true }]);
  assertEquals(new EventHistory(2).toStored(), []);
});

Deno.test("stored columns mixing numbers and other values start as objects, nothing lost", () => {
  const stored = { fields: ["offset", "price"], columns: [[1, 2], [0.5, null]] };
  const history = new EventHistory(2, stored);
  assertEquals(history.toArray(), [{ offset: 1, price: 0.5 }, { offset: 2, price: null }]);
  history.push({ offset: 3, price: 1.5 });
  assertEquals(history.toArray(), [{ offset: 2, price: null }, { offset: 3, price: 1.5 }]);
});
