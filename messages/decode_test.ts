import assert from "node:assert/strict";
import { z } from "zod";
import { decodeJson } from "./decode.ts";

const Schema = z.object({ name: z.string() });
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("decodeJson: invalid UTF-8 is refused as such, wherever the bad bytes are", () => {
  for (
    const bad of [
      new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]),
      new Uint8Array([...bytes('{"name":"a'), 0xc3, 0x28, ...bytes('"}')]), // bad continuation
      new Uint8Array([...bytes('{"name":"'), 0xe2, 0x82, ...bytes('"}')]), // truncated sequence
      new Uint8Array([...bytes('{"name":"'), 0xed, 0xa0, 0x80, ...bytes('"}')]), // surrogate
    ]
  ) {
    assert.deepEqual(decodeJson(Schema, bad), {
      ok: false,
      field: "value",
      message: "value is not valid UTF-8",
    });
  }
});

Deno.test("decodeJson: a value that holds U+FFFD itself, or other non-ASCII text, is valid", () => {
  for (const name of ["\uFFFD", "Zürich €/MWh \uFFFD 東京"]) {
    assert.deepEqual(decodeJson(Schema, bytes(JSON.stringify({ name }))), {
      ok: true,
      value: { name },
    });
  }
});

Deno.test("decodeJson: no value, not JSON, and schema failures name what failed", () => {
  assert.equal(decodeJson(Schema, null).ok, false);
  const notJson = decodeJson(Schema, bytes("{nope"));
  assert.ok(!notJson.ok && notJson.message.startsWith("value is not JSON"));
  assert.deepEqual(decodeJson(Schema, bytes('{"name":1}')), {
    ok: false,
    field: "name",
    message: "name: Invalid input: expected string, received number",
  });
});
