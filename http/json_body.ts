/**
 * Request bodies of operator endpoints, validated at the boundary: size first (413 above the
 * limit, checked on Content-Length and again while reading), then the content type (415
 * unless JSON), UTF-8 and JSON syntax (400 `bad_json`), then the shape (400 `invalid_body`
 * naming the first failing field). Nothing a client sends can make these throw anything but
 * an HttpError.
 */
import type { Context } from "hono";
import type { z } from "zod";
import { HttpError } from "./errors.ts";

/** Largest request body accepted by operator endpoints. */
export const MAX_BODY_BYTES = 64 * 1024;

async function readLimited(body: ReadableStream<Uint8Array>, maxBytes: number) {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new HttpError(413, "body_too_large", `request body exceeds ${maxBytes} bytes`);
      }
      chunks.push(value);
    }
  } finally {
    reader.releaseLock();
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, at);
    at += chunk.byteLength;
  }
  return bytes;
}

/**
 * Reads a JSON body. An empty body gives undefined (the caller decides whether one is
 * required); anything else must be `application/json` (or `+json`), valid UTF-8 and JSON.
 */
export async function readJsonBody(
  c: Context,
  options: { maxBytes?: number } = {},
): Promise<unknown> {
  const maxBytes = options.maxBytes ?? MAX_BODY_BYTES;
  const declared = c.req.header("content-length");
  if (declared !== undefined && /^\d+$/.test(declared) && Number(declared) > maxBytes) {
    throw new HttpError(413, "body_too_large", `request body exceeds ${maxBytes} bytes`);
  }
  const body = c.req.raw.body;
  const bytes = body ? await readLimited(body, maxBytes) : new Uint8Array(0);
  if (bytes.byteLength === 0) return undefined;
  const type = (c.req.header("content-type") ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json" && !/^application\/[\w.+-]+\+json$/.test(type)) {
    throw new HttpError(
      415,
      "unsupported_media_type",
      `request body must be application/json, got ${type || "no content type"}`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new HttpError(400, "bad_json", "request body is not valid UTF-8");
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, "bad_json", `request body is not JSON: ${(err as Error).message}`);
  }
}

/** Validates a decoded body (or query) against a zod schema; 400 names the first bad field. */
export function parseWith<T>(schema: z.ZodType<T>, value: unknown, what = "body"): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const path = issue && issue.path.length > 0 ? issue.path.join(".") : what;
  throw new HttpError(400, `invalid_${what}`, `${path}: ${issue?.message ?? "invalid"}`);
}

/** Reads and validates a JSON body; an empty body is validated as `{}`. */
export async function jsonBody<T>(
  c: Context,
  schema: z.ZodType<T>,
  options: { maxBytes?: number } = {},
): Promise<T> {
  const value = await readJsonBody(c, options);
  return parseWith(schema, value === undefined ? {} : value);
}
