/**
 * Restoring a machine from its persisted snapshot without XState's walk of the context.
 *
 * XState's `restoreSnapshot` visits every object and array of the restored context (`for...in`
 * over each) looking for actor references to revive. A new owner revives thousands of actors at
 * once when its first batch closes their bars (a handoff on a minute), and the walk is about a
 * third of each restore (14.3 -> 9.3 ms per 1000, with their JSON parse). Our machines spawn
 * no children and have no history states, so a snapshot without either holds no reference:
 * the machine's public `resolveState` builds the same snapshot from its value and context,
 * without the walk. Any other snapshot goes through XState's own restore. (persistedSnapshot in key_actor.ts skips the same walk when storing.)
 */
import type { AnyStateMachine } from "xstate";

interface StoredSnapshot {
  status: "active" | "done" | "error" | "stopped";
  value: unknown;
  context: unknown;
  children?: Record<string, unknown>;
  historyValue?: Record<string, unknown>;
  output?: unknown;
  error?: unknown;
}

/** The machine, restoring snapshots without children or history by `resolveState`. */
export function withQuickRestore<M extends AnyStateMachine>(machine: M): M {
  const quick: M = Object.create(machine);
  const restore = machine.restoreSnapshot;
  quick.restoreSnapshot = function (snapshot, scope) {
    const stored = snapshot as unknown as StoredSnapshot;
    if (holdsNoReferences(stored)) {
      return machine.resolveState.call(quick, {
        value: stored.value as never,
        context: stored.context as never,
        status: stored.status,
        output: stored.output,
        error: stored.error,
        historyValue: {},
      });
    }
    return restore.call(quick, snapshot, scope);
  };
  return quick;
}

/**
 * Whether a snapshot (live or stored) has no children and no history: then it holds no actor
 * reference, and XState's walks of its context, storing or restoring, find nothing.
 */
export function holdsNoReferences(
  snapshot: { children?: Record<string, unknown>; historyValue?: Record<string, unknown> },
): boolean {
  for (const _ in snapshot.children ?? {}) return false;
  for (const _ in snapshot.historyValue ?? {}) return false;
  return true;
}
