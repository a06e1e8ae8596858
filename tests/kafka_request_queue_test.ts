/** The fix of kafkajs's idle request-queue loop (stores/kafkajs_patches.ts), on real sockets. */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { createKafka } from "../stores/kafka.ts";
import { type RequestQueueState, scheduleCheckPendingRequests } from "../stores/kafkajs_patches.ts";
import { sleep } from "../timing/sleep.ts";
import { BASE_ENV, pollUntil } from "./support.ts";

const RequestQueue = createRequire(import.meta.url)("kafkajs/src/network/requestQueue/index.js");

Deno.test("an idle kafkajs connection checks its request queue only when a request comes", async () => {
  const checks = { count: 0 };
  const check = RequestQueue.prototype.checkPendingRequests;
  RequestQueue.prototype.checkPendingRequests = function (this: unknown) {
    checks.count++;
    return check.call(this);
  };
  const admin = createKafka(BASE_ENV.DATA_PROC_KAFKA_BOOTSTRAP, "request-queue-test").admin();
  try {
    await admin.connect();
    await admin.listTopics();
    const before = checks.count;
    // Half a second with nothing to send: kafkajs 2.2.4 alone checks ~250 times per
    // connection in it.
    await sleep(500);
    assert.equal(checks.count - before, 0);
    await admin.listTopics(); // and requests still go out
  } finally {
    await admin.disconnect();
    RequestQueue.prototype.checkPendingRequests = check;
  }
});

Deno.test("the request queue still checks while requests wait or a throttle runs", async () => {
  const queue = (pending: unknown[], throttledForMs: number) => {
    const q: RequestQueueState & { checked: number } = {
      throttleCheckTimeoutId: null,
      throttledUntil: throttledForMs > 0 ? Date.now() + throttledForMs : -1,
      pending,
      checked: 0,
      checkPendingRequests() {
        this.checked++;
      },
    };
    return q;
  };
  const idle = queue([], 0);
  scheduleCheckPendingRequests.call(idle);
  assert.equal(idle.throttleCheckTimeoutId, null);

  const waiting = queue([{}], 0);
  scheduleCheckPendingRequests.call(waiting);
  const throttled = queue([], 30);
  scheduleCheckPendingRequests.call(throttled);
  assert.notEqual(waiting.throttleCheckTimeoutId, null);
  assert.notEqual(throttled.throttleCheckTimeoutId, null);
  await pollUntil(
    "both queues checked",
    () => Promise.resolve(waiting.checked === 1 && throttled.checked === 1 ? true : undefined),
  );
});
