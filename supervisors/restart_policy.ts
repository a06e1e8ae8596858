import { backoffCeilingMs } from "../timing/backoff.ts";

/**
 * Erlang-style restart intensity: at most `maxRestarts` within `windowMs`; past that the
 * supervisor escalates to its parent. Backoff doubles per recent restart.
 */
export class RestartIntensity {
  readonly #maxRestarts: number;
  readonly #windowMs: number;
  #times: number[] = [];

  constructor(options: { maxRestarts: number; windowMs: number }) {
    if (options.maxRestarts < 0) {
      throw new RangeError(
        `Cannot track restarts: maxRestarts must be >= 0, got ${options.maxRestarts}`,
      );
    }
    if (options.windowMs <= 0) {
      throw new RangeError(`Cannot track restarts: windowMs must be > 0, got ${options.windowMs}`);
    }
    this.#maxRestarts = options.maxRestarts;
    this.#windowMs = options.windowMs;
  }

  /** Records a restart at `nowMs`; returns false when the intensity limit is exceeded. */
  record(nowMs: number): boolean {
    this.#times = this.#times.filter((t) => nowMs - t < this.#windowMs);
    this.#times.push(nowMs);
    return this.#times.length <= this.#maxRestarts;
  }

  /** Exponential backoff for the next restart: base x 2^(recent restarts - 1), capped. */
  backoffMs(baseMs = 100, capMs = 10_000): number {
    return backoffCeilingMs(this.#times.length, { baseMs, capMs });
  }
}
