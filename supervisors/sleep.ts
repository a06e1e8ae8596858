/**
 * Moved to timing/sleep.ts (one abortable delay for every layer). Kept only until
 * actor_consumer.ts and replay_jobs.ts import it from there; then delete this file.
 */
export { sleep } from "../timing/sleep.ts";
