/**
 * `deno task lint:layers`: checks that imports between the project's folders point one way
 * (DESIGN.md, "Layers"). Every .ts/.tsx file outside tests (`tests/`, `*_test.ts`) is read,
 * its import and export-from statements (and dynamic `import("...")`) are parsed, and each
 * relative import into another folder is checked against the table below. Prints each
 * violation as `file: imports X (rule)` and exits 1 when there is any.
 *
 * The layers, top to bottom. A folder may import only the folders its row lists (and
 * itself); anything not listed is a violation, and so is a file in a folder the table
 * does not know (add a row for a new folder, so the table stays the whole picture).
 *
 * | layer           | may import (besides itself)                                          |
 * | --------------- | -------------------------------------------------------------------- |
 * | main.ts         | app/ and every layer below                                           |
 * | app/            | http/ and every layer below: the composition root that wires a node |
 * | http/, tools/,  | supervisors/, stores/ (read-only queries), actors/ (pure: kind       |
 * |   deploy/       |   definitions), observability/, messages/, config/, timing/          |
 * | supervisors/    | actors/, stores/, observability/, messages/, config/, timing/        |
 * | actors/         | observability/, messages/, config/, timing/ (pure logic, no stores/) |
 * | stores/         | observability/, messages/, config/, timing/ (I/O, no actors/)        |
 * | observability/  | messages/, config/, timing/: every layer above logs and counts, so   |
 * |                 |   it sits below them and never imports stores/ or supervisors/       |
 * | messages/       | nothing of ours: schemas, and the types both sides share             |
 * | config/         | nothing of ours                                                      |
 * | timing/         | nothing of ours: the one abortable delay and the one backoff         |
 *
 * Nothing imports tests/ (test code), except the exceptions listed in EXCEPTIONS.
 * Whether an http/ or tools/ import of stores/ only reads is not checked here (review it).
 */

/** Which folders each layer may import, besides itself. */
export const LAYER_RULES: Readonly<Record<string, readonly string[]>> = {
  "main.ts": [
    "app",
    "http",
    "supervisors",
    "actors",
    "stores",
    "observability",
    "messages",
    "config",
    "timing",
  ],
  app: ["http", "supervisors", "actors", "stores", "observability", "messages", "config", "timing"],
  http: ["supervisors", "stores", "actors", "observability", "messages", "config", "timing"],
  tools: ["supervisors", "stores", "actors", "observability", "messages", "config", "timing"],
  deploy: ["supervisors", "stores", "actors", "observability", "messages", "config", "timing"],
  supervisors: ["actors", "stores", "observability", "messages", "config", "timing"],
  actors: ["observability", "messages", "config", "timing"],
  stores: ["observability", "messages", "config", "timing"],
  observability: ["messages", "config", "timing"],
  messages: [],
  config: [],
  timing: [],
};

/** Single files allowed past the table, each with the reason. */
export const EXCEPTIONS: readonly { from: string; to: string; why: string }[] = [
  {
    from: "tools/bench.ts",
    to: "tests",
    why: "the benchmark drives a real node and checks it with the test oracle; " +
      "it is not part of the image",
  },
];

export interface Violation {
  /** Repository-relative path of the importing file. */
  file: string;
  /** Repository-relative path the import resolves to. */
  imports: string;
  rule: string;
}

/** The layer of a repository-relative path: its first folder, or the file at the root. */
export function layerOf(path: string): string {
  const slash = path.indexOf("/");
  return slash < 0 ? path : path.slice(0, slash);
}

/** Files the checker skips: tests, dependencies and dot folders. */
export function isChecked(path: string): boolean {
  if (!/\.tsx?$/.test(path) || /_test\.tsx?$/.test(path)) return false;
  const first = layerOf(path);
  return !["tests", "node_modules", "test-artifacts"].includes(first) && !first.startsWith(".");
}

// Statements, anchored at a line start so that JSDoc (` * import ...`) is not matched:
// `import x from "m"`, `import type { a } from "m"`, `import "m"`, `export { a } from "m"`,
// `export * from "m"`; the clause before `from` may span lines but holds no `;`.
const STATIC_IMPORT =
  /^[ \t]*(?:import[ \t\n]+(?:type[ \t\n]+)?[\w$*{][^;]*?|export[ \t\n]+(?:type[ \t\n]+)?[*{][^;]*?)\bfrom[ \t\n]*(["'])([^"'\n]+)\1/gm;
const BARE_IMPORT = /^[ \t]*import[ \t]*(["'])([^"'\n]+)\1/gm;
const DYNAMIC_IMPORT = /\bimport\([ \t\n]*(["'])([^"'\n]+)\1[ \t\n]*\)/g;

/** The module specifiers a source file imports, in order of appearance. */
export function importSpecifiers(source: string): string[] {
  const found: { at: number; specifier: string }[] = [];
  for (const pattern of [STATIC_IMPORT, BARE_IMPORT, DYNAMIC_IMPORT]) {
    for (const m of source.matchAll(pattern)) found.push({ at: m.index, specifier: m[2]! });
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.specifier);
}

/**
 * The repository-relative path a relative specifier resolves to from `file`; undefined for
 * bare and remote specifiers (npm:, jsr:, import-map names), which are not ours.
 */
export function resolveImport(file: string, specifier: string): string | undefined {
  if (!specifier.startsWith("./") && !specifier.startsWith("../")) return undefined;
  const root = "file:///repo/";
  const url = new URL(specifier, new URL(file, root));
  return url.href.startsWith(root) ? decodeURIComponent(url.href.slice(root.length)) : specifier;
}

function describeRule(layer: string): string {
  const allowed = LAYER_RULES[layer] ?? [];
  const name = layer.endsWith(".ts") ? layer : `${layer}/`;
  if (allowed.length === 0) return `${name} imports nothing of ours`;
  return `${name} may import ${allowed.map((l) => `${l}/`).join(", ")}`;
}

/** Why `file` may not import `target` (both repository-relative), or undefined if it may. */
export function checkImport(file: string, target: string): string | undefined {
  const from = layerOf(file);
  const to = layerOf(target);
  if (target.startsWith("../")) return "imports outside the repository";
  if (from === to) return undefined;
  if (EXCEPTIONS.some((e) => e.from === file && e.to === to)) return undefined;
  if (!(from in LAYER_RULES)) return `${from} is in no layer of tools/lint_layers.ts`;
  if (to === "tests") return "nothing outside tests/ imports test code";
  if (LAYER_RULES[from]!.includes(to)) return undefined;
  return describeRule(from);
}

/** Checks every file of `sources` (repository-relative path -> source text). */
export function checkSources(sources: ReadonlyMap<string, string>): Violation[] {
  const violations: Violation[] = [];
  for (const [file, source] of [...sources].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!isChecked(file)) continue;
    if (!(layerOf(file) in LAYER_RULES)) {
      violations.push({ file, imports: "-", rule: `${layerOf(file)} is in no layer` });
      continue;
    }
    for (const specifier of importSpecifiers(source)) {
      const target = resolveImport(file, specifier);
      if (target === undefined) continue;
      const rule = checkImport(file, target);
      if (rule !== undefined) violations.push({ file, imports: target, rule });
    }
  }
  return violations;
}

/** Reads every checked file under the `root` directory (a path or a file URL). */
export async function readSources(root: string | URL): Promise<Map<string, string>> {
  const base = (root instanceof URL ? decodeURIComponent(root.pathname) : root).replace(
    /\/?$/,
    "/",
  );
  const sources = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const entry of Deno.readDir(`${base}${dir}`)) {
      const path = `${dir}${entry.name}`;
      if (entry.isDirectory) {
        if (isChecked(`${path}/x.ts`)) await walk(`${path}/`);
      } else if (entry.isFile && isChecked(path)) {
        sources.set(path, await Deno.readTextFile(`${base}${path}`));
      }
    }
  };
  await walk("");
  return sources;
}

export function formatViolation(v: Violation): string {
  return `${v.file}: imports ${v.imports} (${v.rule})`;
}

if (import.meta.main) {
  const root = Deno.args[0] ?? new URL("..", import.meta.url);
  const violations = checkSources(await readSources(root));
  for (const v of violations) console.log(formatViolation(v));
  if (violations.length > 0) {
    console.error(`lint:layers: ${violations.length} import(s) break DESIGN.md "Layers"`);
    Deno.exit(1);
  }
  console.error('lint:layers: every import follows DESIGN.md "Layers"');
}
