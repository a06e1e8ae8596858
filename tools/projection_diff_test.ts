import assert from "node:assert/strict";
import { diffBar, diffCurve, diffLatest, storedVersion } from "./projection_diff.ts";

const latest = {
  value: { instrument_id: "A", price: 10, size: 1, event_time_ms: 1000, event_id: "e2" },
  goldVersion: 0,
};

Deno.test("diffLatest: same ignores version; older differs; newer is ahead; junk is invalid", () => {
  assert.deepEqual(diffLatest(JSON.stringify({ ...latest.value, version: 9 }), latest), {
    status: "same",
  });
  const older = diffLatest(JSON.stringify({ ...latest.value, event_id: "e1", version: 1 }), latest);
  assert.equal(older.status, "different");
  const tieNewer = diffLatest(
    JSON.stringify({ ...latest.value, event_id: "e3", price: 11, version: 1 }),
    latest,
  );
  assert.equal(tieNewer.status, "ahead");
  assert.equal(diffLatest("{", latest).status, "invalid");
  assert.equal(diffLatest(JSON.stringify({ price: 1 }), latest).status, "invalid");
});

Deno.test("diffBar: a newer bar in Redis is ahead, a changed final flag differs", () => {
  const expected = {
    value: {
      instrument_id: "A",
      resolution: "1m",
      start_ms: 60_000,
      end_ms: 120_000,
      open: 1,
      high: 2,
      low: 1,
      close: 2,
      volume: 3,
      vwap: 1.5,
      count: 2,
      final: true,
    },
    goldVersion: 4,
  };
  const stored = { ...expected.value, version: 4 };
  assert.equal(diffBar(JSON.stringify(stored), expected).status, "same");
  assert.equal(
    diffBar(JSON.stringify({ ...stored, start_ms: 120_000, end_ms: 180_000 }), expected).status,
    "ahead",
  );
  assert.deepEqual(diffBar(JSON.stringify({ ...stored, final: false }), expected), {
    status: "different",
    differences: [{ field: "final", expected: true, actual: false }],
  });
});

Deno.test("diffCurve compares points by tenor and reports missing and extra tenors", () => {
  const expected = {
    value: {
      curve_id: "C",
      as_of: "2024-05-02",
      points: [
        { tenor: "2025-01", price: 1, event_time_ms: 5 },
        { tenor: "2025-02", price: 2, event_time_ms: 5 },
      ],
    },
    goldVersion: 2,
  };
  const stored = {
    ...expected.value,
    points: [{ tenor: "2025-01", price: 1, event_time_ms: 5 }, {
      tenor: "2026-01",
      price: 3,
      event_time_ms: 5,
    }],
    version: 1,
  };
  const verdict = diffCurve(JSON.stringify(stored), expected);
  assert.equal(verdict.status, "different");
  assert.deepEqual(
    verdict.status === "different" ? verdict.differences.map((d) => d.field) : [],
    ["points[2025-02]", "points[2026-01]"],
  );
  assert.equal(
    diffCurve(JSON.stringify({ ...stored, as_of: "2024-05-03" }), expected).status,
    "ahead",
  );
});

Deno.test("storedVersion reads a numeric version, else 0", () => {
  assert.equal(storedVersion(null), 0);
  assert.equal(storedVersion("nope"), 0);
  assert.equal(storedVersion(JSON.stringify({ version: 7 })), 7);
  assert.equal(storedVersion(JSON.stringify({ version: "7" })), 0);
});
