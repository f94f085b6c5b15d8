/**
 * Request bodies in, JSON and Status errors out: the body size limit (413), JSON-only content types (415),
 * malformed JSON (400), the `dryRun` and `fieldValidation` query parameters, and `Warning` headers.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { parse as parseYaml } from "yaml";
import type { FieldValidation } from "./object-rules";
import type { WriteOptions } from "./resource-operations";
import { badRequest, internalError, KubeStatusError, requestTooLarge, unsupportedMediaType } from "./status-errors";

export function sendJson(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const text = JSON.stringify(body);
  if (warnings.length) res.setHeader("Warning", warnings.map((w) => `299 - ${JSON.stringify(w)}`));
  res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(res.req.method === "HEAD" ? undefined : text);
}

export function sendError(res: ServerResponse, err: unknown): void {
  // KubeStatusError is the API's own answer; anything else is a bug here, reported as the real server does
  // (500 InternalError) instead of crashing the process or hanging the client.
  const status = err instanceof KubeStatusError ? err : internalError(err instanceof Error ? err.message : String(err));
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (status.code === 413) res.setHeader("Connection", "close");
  if (status.details?.retryAfterSeconds) res.setHeader("Retry-After", String(status.details.retryAfterSeconds));
  sendJson(res, status.code, status.toStatus());
}

/**
 * Reads a JSON body of at most `limitBytes`. `jsonOnly` refuses other content types (PATCH passes false: its
 * content type names the patch format). Returns undefined for an empty optional body.
 */
export async function readJsonBody(req: IncomingMessage, limitBytes: number, required: boolean, jsonOnly: boolean): Promise<unknown> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  if (jsonOnly && type !== "" && type !== "application/json" && type !== "*/*") {
    throw unsupportedMediaType(type, ["application/json"]);
  }
  const text = (await readRawBody(req, limitBytes)).toString("utf8");
  if (text.trim() === "") {
    if (required) throw badRequest("the body of the request was empty");
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    // Malformed JSON is the client's error: 400, as the real server's decoder reports it.
    throw badRequest(`couldn't get version/kind; json parse error: ${(err as Error).message}`);
  }
}

/**
 * A server-side apply body (application/apply-patch+yaml): YAML, or JSON (which is YAML). Read as YAML 1.1, as
 * kube-apiserver's decoder reads it (`on`/`yes`/`y` are booleans); aliases are bounded by the parser's own limit.
 */
export async function readYamlBody(req: IncomingMessage, limitBytes: number): Promise<unknown> {
  const text = (await readRawBody(req, limitBytes)).toString("utf8");
  if (text.trim() === "") throw badRequest("the body of the request was empty");
  try {
    return parseYaml(text, { version: "1.1", uniqueKeys: true }) as unknown;
  } catch (err) {
    // Malformed YAML is the client's error: 400, as the real server's decoder reports it.
    throw badRequest(`error decoding YAML: ${(err as Error).message.split("\n")[0] ?? ""}`);
  }
}

/** A body of any content type, at most `limitBytes` (413 beyond). */
export async function readRawBody(req: IncomingMessage, limitBytes: number): Promise<Buffer> {
  if (Number(req.headers["content-length"] ?? 0) > limitBytes) throw requestTooLarge(limitBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limitBytes) throw requestTooLarge(limitBytes);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

export function parseWriteOptions(q: URLSearchParams): WriteOptions {
  const dryRun = q.getAll("dryRun");
  const bad = dryRun.find((d) => d !== "All");
  if (bad !== undefined) throw badRequest(`dryRun: Unsupported value: ${JSON.stringify(bad)}: supported values: "All"`);
  const fv = q.get("fieldValidation") ?? "";
  const valid: Record<string, FieldValidation> = { "": "Warn", Strict: "Strict", Warn: "Warn", Ignore: "Ignore" };
  const fieldValidation = valid[fv];
  if (!fieldValidation) throw badRequest(`fieldValidation must be one of "Ignore", "Warn", or "Strict", got ${JSON.stringify(fv)}`);
  return { dryRun: dryRun.length > 0, fieldValidation };
}
