import assert from "node:assert/strict";
import { RefreshSchedule, schedulePhase } from "./flush_schedule.ts";

Deno.test("partitions' phases spread over the interval for any number of partitions", () => {
  for (let n = 1; n <= 64; n++) {
    const phases = Array.from({ length: n }, (_, p) => schedulePhase(p)).sort((a, b) => a - b);
    assert.ok(phases.every((x) => x >= 0 && x < 1));
    const gaps = phases.map((x, i) => (i + 1 < n ? phases[i + 1]! : phases[0]! + 1) - x);
    // Evenly would be 1/n each: no gap (a stretch of flushes without snapshots) near 3/n.
    assert.ok(Math.max(...gaps) < 2.7 / n, `n=${n}: largest gap ${Math.max(...gaps)}`);
  }
});

/** Runs the periodic flush as the flush loop does, on a simulated clock, for `ms`. */
function simulate(partitionCount: number, intervalMs: number, ms: number, extraAt: number[] = []) {
  const schedule = new RefreshSchedule<{ partition: number }>(intervalMs);
  const partitions = Array.from({ length: partitionCount }, (_, partition) => ({ partition }));
  const flushes: { at: number; partitions: number[] }[] = [];
  const extra = [...extraAt];
  for (let now = 0; now < ms;) {
    const flushed = partitions.filter((p) => schedule.due(p, now) || extra[0] === now);
    if (extra[0] === now) extra.shift();
    for (const p of flushed) schedule.flushed(p, now);
    if (flushed.length > 0) flushes.push({ at: now, partitions: flushed.map((p) => p.partition) });
    now += Math.ceil(schedule.sleepMs(partitions, now));
    if (extra.length > 0 && extra[0]! < now) now = extra[0]!;
  }
  return flushes;
}

Deno.test("each partition refreshes once per interval, at its own phase, a few at a time", () => {
  const flushes = simulate(6, 1000, 20_000);
  for (let p = 0; p < 6; p++) {
    const times = flushes.filter((f) => f.partitions.includes(p)).map((f) => f.at);
    // The first flush at start, then one per interval at its phase: 20 or 21 in 20 s.
    assert.ok(times.length === 20 || times.length === 21, `partition ${p}: ${times}`);
    for (let i = 2; i < times.length; i++) assert.equal(times[i]! - times[i - 1]!, 1000);
  }
  // After the first, no periodic flush takes more than one of the 6 partitions.
  assert.ok(flushes.slice(1).every((f) => f.partitions.length === 1), JSON.stringify(flushes));
});

Deno.test("a flush outside the schedule leaves each partition's phase where it was", () => {
  const plain = simulate(4, 1000, 10_000).slice(1);
  const withExtra = simulate(4, 1000, 10_000, [2_500, 6_010]).slice(1);
  const periodic = withExtra.filter((f) => f.at !== 2_500 && f.at !== 6_010);
  const at = (fs: { at: number; partitions: number[] }[], p: number) =>
    fs.filter((f) => f.partitions.includes(p)).map((f) => f.at % 1000);
  for (let p = 0; p < 4; p++) assert.deepEqual(new Set(at(periodic, p)), new Set(at(plain, p)));
});

Deno.test("the periodic flush never wakes more than 16 times an interval", () => {
  const flushes = simulate(64, 1000, 10_000);
  assert.ok(flushes.length <= 16 * 10 + 1, `${flushes.length} flushes`);
  // Each partition still once per interval (the first flush, then 10 more at most).
  for (let p = 0; p < 64; p++) {
    const n = flushes.filter((f) => f.partitions.includes(p)).length;
    assert.ok(n >= 10 && n <= 11, `partition ${p}: ${n}`);
  }
});
