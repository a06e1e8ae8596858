import assert from "node:assert/strict";
import { type NodeJobState, overallProgress } from "./replay_jobs.ts";

function share(
  status: NodeJobState["status"],
  read?: number,
  total?: number,
  eta?: number | null,
): NodeJobState {
  return {
    node_id: `n-${Math.random()}`,
    status,
    updated_at_ms: 0,
    ...(read === undefined ? {} : {
      progress: {
        records_read: read,
        records_total: total!,
        events: read,
        keys: 1,
        percent: 0,
        eta_ms: eta ?? null,
      },
    }),
  };
}

Deno.test("a job's progress never goes back when one share ends before the other", () => {
  // A small slow share and a big fast one that ends first. Before, an ended share left the
  // sum of records: 85.4 % fell to 50 % here (84.7 to 74.1 in the bench).
  const steps = [
    [share("running", 40, 100, 600), share("running", 900, 1000, 100)],
    [share("running", 50, 100, 500), share("done")],
    [share("running", 90, 100, 100), share("done")],
    [share("done"), share("done")],
  ];
  const percents = steps.map((s) => overallProgress(s).percent);
  assert.deepEqual(percents, [65, 75, 95, 100]);
  for (let i = 1; i < percents.length; i++) assert.ok(percents[i]! >= percents[i - 1]!);
});

Deno.test("a share not started yet counts as nothing read and leaves the ETA unknown", () => {
  const progress = overallProgress([share("running", 50, 100, 1000), share("pending")]);
  assert.deepEqual(progress, { percent: 25, eta_ms: null });
  assert.deepEqual(overallProgress([share("running", 0, 0, 0)]), { percent: 100, eta_ms: 0 });
});
