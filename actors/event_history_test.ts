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
