import { deepStrictEqual } from "node:assert/strict";
import { createLogger, setProcessLogFields } from "./logger.ts";

function captureLines(fn: () => void): Record<string, unknown>[] {
  const lines: string[] = [];
  const original = console.error;
  console.error = (line: string) => void lines.push(line);
  try {
    fn();
  } finally {
    console.error = original;
  }
  return lines.map((l) => JSON.parse(l));
}

Deno.test("every line carries the process fields (DATA_PROC_ENV) beside the logger's own", () => {
  setProcessLogFields({ env: "staging" });
  try {
    const [line] = captureLines(() =>
      createLogger("node", { node_id: "n1" }).child("actors").info("hello", { key: "K" })
    );
    const { ts: _ts, ...rest } = line!;
    deepStrictEqual(rest, {
      level: "info",
      component: "node.actors",
      msg: "hello",
      env: "staging",
      node_id: "n1",
      key: "K",
    });
  } finally {
    setProcessLogFields({});
  }
});
