import assert from "node:assert/strict";
import { snapshotPhase } from "./actor_consumer.ts";

Deno.test("partitions' snapshot phases spread over the interval for any number of partitions", () => {
  for (let n = 1; n <= 64; n++) {
    const phases = Array.from({ length: n }, (_, p) => snapshotPhase(p)).sort((a, b) => a - b);
    assert.ok(phases.every((x) => x >= 0 && x < 1));
    const gaps = phases.map((x, i) => (i + 1 < n ? phases[i + 1]! : phases[0]! + 1) - x);
    // Evenly would be 1/n each: no gap (a stretch of flushes without snapshots) near 3/n.
    assert.ok(Math.max(...gaps) < 2.7 / n, `n=${n}: largest gap ${Math.max(...gaps)}`);
  }
});
