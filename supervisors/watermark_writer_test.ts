import assert from "node:assert/strict";
import { CONTROL_HEADER, isControlRecord, WatermarkRecord } from "../messages/watermark.ts";
import { watermarkMessages } from "./watermark_writer.ts";

Deno.test("watermark messages go to every target partition explicitly, with the control header", () => {
  const messages = watermarkMessages(
    [{ partition: 0, watermarkMs: 900, idle: false }, {
      partition: 2,
      watermarkMs: null,
      idle: true,
    }],
    { sourceTopic: "in.ticks", sourcePartitions: 3, targetPartitions: 4, wallMs: 1234 },
  );
  assert.equal(messages.length, 2 * 4);
  assert.deepEqual(messages.map((m) => m.partition), [0, 1, 2, 3, 0, 1, 2, 3]);
  assert.ok(messages.every((m) => isControlRecord(m.headers)));
  assert.equal(messages[0]!.headers![CONTROL_HEADER], "watermark");
  assert.equal(messages[0]!.key, null);
  assert.deepEqual(WatermarkRecord.parse(JSON.parse(String(messages[4]!.value))), {
    type: "watermark",
    source_topic: "in.ticks",
    source_partition: 2,
    watermark_ms: null,
    idle: true,
    wall_ms: 1234,
    source_partitions: 3,
  });
});
