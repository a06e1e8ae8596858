import assert from "node:assert/strict";
import { parseGenerateArgs } from "./generate.ts";

Deno.test("parseGenerateArgs reads every option", () => {
  const args = parseGenerateArgs([
    "--rate=0",
    "--count=50",
    "--instruments=3",
    "--curves=0",
    "--seed=9",
    "--start-time=2027-01-01T00:00:00+01:00",
    "--malformed-ratio=0.1",
    "--duplicate-ratio=0",
    "--seed-refdata",
  ], 0);
  assert.notEqual(args, "help");
  if (args === "help") return;
  assert.equal(args.count, 50);
  assert.equal(args.startMs, Date.UTC(2026, 11, 31, 23));
  assert.equal(args.stepMs, 1);
  assert.equal(args.seedRefdata, true);
  assert.equal(parseGenerateArgs(["--help"], 0), "help");
});

Deno.test("parseGenerateArgs refuses bad options with a clear message", () => {
  assert.throws(() => parseGenerateArgs(["--rate=fast"], 0), /--rate must be a number/);
  assert.throws(() => parseGenerateArgs(["--count=0", "--rate=0"], 0), /needs --rate > 0/);
  assert.throws(() => parseGenerateArgs(["--start-time=soon"], 0), /--start-time/);
  assert.throws(() => parseGenerateArgs(["--duplicate-ratio=2"], 0), /duplicateRatio/);
  assert.throws(() => parseGenerateArgs(["--nope"], 0));
});
