import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  checkImport,
  checkSources,
  formatViolation,
  importSpecifiers,
  readSources,
  resolveImport,
} from "./lint_layers.ts";

Deno.test("lint:layers parses static, type, re-export, bare and dynamic imports, not JSDoc", () => {
  const source = [
    "/**",
    ' * import { nope } from "../doc/example.ts";',
    " */",
    'import { a } from "./a.ts";',
    'import type { B } from "../messages/b.ts";',
    "import {",
    "  c,",
    "  type D,",
    '} from "../stores/c.ts";',
    "import * as e from '../e.ts';",
    'import "./side_effect.ts";',
    'export { f } from "./f.ts";',
    'export * from "./g.ts";',
    'import { z } from "zod";',
    'const h = await import("../h.ts");',
    'export const text = "copied from \\"x.ts\\"";',
  ].join("\n");
  assertEquals(importSpecifiers(source), [
    "./a.ts",
    "../messages/b.ts",
    "../stores/c.ts",
    "../e.ts",
    "./side_effect.ts",
    "./f.ts",
    "./g.ts",
    "zod",
    "../h.ts",
  ]);
});

Deno.test("lint:layers resolves relative specifiers and ignores bare ones", () => {
  assertEquals(resolveImport("stores/x.ts", "../actors/y.ts"), "actors/y.ts");
  assertEquals(resolveImport("actors/kinds/a/k.ts", "../../../messages/m.ts"), "messages/m.ts");
  assertEquals(resolveImport("main.ts", "./app/node.ts"), "app/node.ts");
  assertEquals(resolveImport("stores/x.ts", "npm:zod@4"), undefined);
  assertEquals(resolveImport("stores/x.ts", "hono/jsx"), undefined);
});

Deno.test("lint:layers allows downward imports and names the rule an upward one breaks", () => {
  assertEquals(checkImport("supervisors/s.ts", "actors/a.ts"), undefined);
  assertEquals(checkImport("supervisors/s.ts", "supervisors/t.ts"), undefined);
  assertEquals(checkImport("http/h.ts", "supervisors/s.ts"), undefined);
  assertEquals(checkImport("app/node.ts", "http/app.ts"), undefined);
  assertEquals(checkImport("stores/s.ts", "observability/logger.ts"), undefined);
  assertEquals(checkImport("observability/o.ts", "timing/sleep.ts"), undefined);
  assertEquals(checkImport("main.ts", "app/node.ts"), undefined);
  assertEquals(checkImport("tools/bench.ts", "tests/expected.ts"), undefined); // an exception
  assertEquals(
    checkImport("stores/s.ts", "actors/decimal.ts"),
    "stores/ may import observability/, messages/, config/, timing/",
  );
  assertEquals(checkImport("actors/a.ts", "stores/s.ts")?.startsWith("actors/ may import"), true);
  assertEquals(checkImport("supervisors/n.ts", "http/app.ts")?.startsWith("supervisors/"), true);
  assertEquals(checkImport("observability/o.ts", "stores/redis.ts") !== undefined, true);
  assertEquals(
    checkImport("messages/m.ts", "config/config.ts"),
    "messages/ imports nothing of ours",
  );
  assertEquals(checkImport("http/h.ts", "app/node.ts") !== undefined, true);
  assertEquals(
    checkImport("tools/t.ts", "tests/support.ts"),
    "nothing outside tests/ imports test code",
  );
});

Deno.test("lint:layers checks a small tree: skips tests, reports folders with no rule", () => {
  const sources = new Map([
    ["stores/reference.ts", 'import { parseDecimal } from "../actors/decimal.ts";\n'],
    ["actors/decimal.ts", 'import { Bar } from "../messages/bar.ts";\n'],
    ["messages/bar.ts", 'import { z } from "zod";\n'],
    ["stores/reference_test.ts", 'import { x } from "../supervisors/x.ts";\n'],
    ["tests/support.ts", 'import { y } from "../app/node.ts";\n'],
    ["lib/util.ts", 'import { z } from "zod";\n'],
    ["README.md", 'import { w } from "../x.ts";\n'],
  ]);
  assertEquals(checkSources(sources).map(formatViolation), [
    "lib/util.ts: imports - (lib is in no layer)",
    "stores/reference.ts: imports actors/decimal.ts " +
    "(stores/ may import observability/, messages/, config/, timing/)",
  ]);
});

Deno.test("the repository follows its layer rules (deno task lint:layers)", async () => {
  const violations = checkSources(await readSources(new URL("..", import.meta.url)));
  assertEquals(violations.map(formatViolation), []);
});
