/** Every actor kind the node runs: adding a kind is its module and one line here. */
import { curveKind } from "./curve/kind.ts";
import { instrumentKind } from "./instrument/kind.ts";
import type { ActorKindDefinition } from "./kind.ts";

export const KINDS: readonly ActorKindDefinition[] = [
  instrumentKind as ActorKindDefinition,
  curveKind as ActorKindDefinition,
];

/** Every kind's name, as HTTP routes and metrics use it. */
export const KIND_NAMES: readonly string[] = KINDS.map((k) => k.name);

/** The definition of a kind by name (undefined: no such kind). */
export function kindNamed(name: string): ActorKindDefinition | undefined {
  return KINDS.find((k) => k.name === name);
}

/** The definition of a kind the caller knows exists (a parsed, validated name). */
export function kindOf(name: string): ActorKindDefinition {
  const kind = kindNamed(name);
  if (!kind) throw new Error(`no actor kind ${name}`);
  return kind;
}
