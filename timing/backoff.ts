/**
 * The one backoff formula: capped exponential, base x 2^(attempt - 1), and its jittered
 * form for retries, so that nodes retrying the same store do not retry in step.
 */

export interface BackoffOptions {
  /** Delay of the first attempt; default 200 ms. */
  baseMs?: number;
  /** Upper bound of any delay; default 10 s. */
  capMs?: number;
}

/** The un-jittered delay of the `attempt`-th retry (1, 2, ...): base x 2^(attempt - 1), capped. */
export function backoffCeilingMs(attempt: number, options: BackoffOptions = {}): number {
  return Math.min(
    options.capMs ?? 10_000,
    (options.baseMs ?? 200) * 2 ** Math.max(0, attempt - 1),
  );
}

/**
 * Capped exponential backoff with jitter for the `attempt`-th retry (1, 2, ...): a random
 * delay between half and all of `backoffCeilingMs(attempt)`.
 */
export function jitteredBackoffMs(
  attempt: number,
  options: BackoffOptions & { random?: () => number } = {},
): number {
  const ceiling = backoffCeilingMs(attempt, options);
  return Math.round(ceiling * (0.5 + 0.5 * (options.random ?? Math.random)()));
}
