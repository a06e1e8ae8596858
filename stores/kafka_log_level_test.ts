/** The level the node logs each kafkajs log entry at. */
import assert from "node:assert/strict";
import { kafkajsLogLevel } from "./kafka.ts";
import { logLevel } from "./kafkajs.ts";

Deno.test("kafkajs's error responses of a leadership settling are logged at debug, other errors at error", () => {
  const response = (error: string) => ({
    level: logLevel.ERROR,
    log: { message: "Response ListOffsets(key: 2, version: 3)", error, timestamp: "" },
  });
  assert.equal(
    kafkajsLogLevel(response("This server is not the leader for that topic-partition")),
    "debug",
  );
  assert.equal(
    kafkajsLogLevel(response("This server does not host this topic-partition")),
    "debug",
  );
  assert.equal(
    kafkajsLogLevel(
      response(
        "There is no leader for this topic-partition as we are in the middle of a leadership election",
      ),
    ),
    "debug",
  );
  assert.equal(kafkajsLogLevel(response("The request timed out")), "error");
  // The same error outside a response (kafkajs giving up a send) stays an error.
  assert.equal(
    kafkajsLogLevel({
      level: logLevel.ERROR,
      log: {
        message: "Failed to send messages: This server is not the leader for that topic-partition",
        timestamp: "",
      },
    }),
    "error",
  );
  assert.equal(
    kafkajsLogLevel({ level: logLevel.WARN, log: { message: "x", timestamp: "" } }),
    "warn",
  );
});
