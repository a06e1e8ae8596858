/**
 * One XState system for all the machines of an adapter (one per kind and thread).
 *
 * A root actor gets a system of its own: about twenty closures, three Maps, a Set and a
 * WeakMap, which was 39% of a fresh instrument actor's heap (4,694 -> 2,861 B) and a sixth of
 * its spawn time. Machines spawned here are children of one root actor instead, through
 * XState's public `parent` option, and share its system. A child cannot be stopped
 * directly: the root stops it (`stopChild`) when asked to.
 *
 * Nothing else changes for the machines: they spawn no actors of their own, so they never
 * address their parent. When one throws, XState stops it and tells the root, which ignores
 * that: the runtime reads the error from the machine's snapshot (KeyActor.drain).
 */
import {
  type ActorOptions,
  type AnyActorLogic,
  type AnyActorRef,
  createActor,
  fromTransition,
  type InputFrom,
} from "xstate";

const STOP = "host.stop";
type HostEvent = { type: typeof STOP; child: AnyActorRef } | { type: string };

export class MachineHost {
  #live = 0;
  readonly #root = createActor(
    fromTransition((state: null, event: HostEvent, { stopChild }) => {
      if (event.type === STOP && "child" in event) stopChild(event.child);
      return state;
    }, null),
  ).start();

  /**
   * Creates and starts an actor of `logic` in this host's system; `beforeStart` attaches its
   * listeners first, so they see what it emits when it starts.
   */
  start<L extends AnyActorLogic>(
    logic: L,
    options: ActorOptions<L>,
    beforeStart: (actor: AnyActorRef) => void = () => {},
  ): AnyActorRef {
    const actor = createActor(logic, { ...options, parent: this.#root });
    beforeStart(actor);
    try {
      actor.start();
    } catch (err) {
      this.#root.send({ type: STOP, child: actor });
      throw err;
    }
    this.#live++;
    return actor;
  }

  /**
   * Starts a machine fresh from `input`, or restored from `persisted` when given, with
   * `onEmitted` listening to everything it emits (how each kind's adapter spawns its actors).
   */
  startMachine<L extends AnyActorLogic, Emitted>(
    logic: L,
    input: InputFrom<L>,
    persisted: unknown,
    onEmitted: (emitted: Emitted) => void,
  ): AnyActorRef {
    const options: ActorOptions<L> = persisted === undefined
      ? { input }
      : { input, snapshot: persisted as never };
    return this.start(logic, options, (actor) => actor.on("*", onEmitted));
  }

  /** Stops an actor this host created (once), releasing it from the system. */
  stop(actor: AnyActorRef): void {
    if (actor._parent !== this.#root) throw new Error("not an actor of this host");
    this.#live--;
    this.#root.send({ type: STOP, child: actor });
  }

  /** Actors created and not yet stopped: the system holds each until it is stopped. */
  get live(): number {
    return this.#live;
  }
}
