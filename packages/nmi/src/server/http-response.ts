import { STATUS_CODES, type ServerResponse } from "node:http";
import { NMI_ERROR_CODE, NmiError, UpstreamRefusalError } from "../errors";
import type { AcquiredToken } from "../token/token-source";
import { NMI_VERSION, NMI_VERSION_HEADER } from "../version";

/** Writes a JSON answer with NMI's version header (every NMI response carries it). */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** As sendJson, with the body already serialised (a Buffer skips the UTF-8 encoding of every write). */
export function sendJsonText(res: ServerResponse, status: number, payload: string | Buffer, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    ...headers,
    [NMI_VERSION_HEADER]: NMI_VERSION,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}

/**
 * A whole HTTP/1.1 answer as text, for a socket that has no ServerResponse (Node's parser rejected the request,
 * CONNECT, a connection refused at the cap): IMDS-shaped JSON, NMI's header, and the connection closed after it.
 */
export function rawJsonAnswer(status: number, body: { error: string; error_description: string }, headers: Record<string, string> = {}): string {
  const payload = JSON.stringify(body);
  const extra = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\nconnection: close\r\ncontent-type: application/json; charset=utf-8\r\n` +
    `${NMI_VERSION_HEADER}: ${NMI_VERSION}\r\n${extra}content-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`
  );
}

/** The status, IMDS-shaped body and headers an error is answered with; `code` for logs and metrics. */
export interface ErrorAnswer {
  status: number;
  code: string;
  body: unknown;
  headers: Record<string, string>;
}

/**
 * The one place any failure becomes an HTTP answer: NMI's own refusals with their codes (Retry-After on 503s),
 * upstream refusals passed through unchanged, anything else an internal error whose message names no secret.
 */
export function errorAnswer(error: unknown): ErrorAnswer {
  if (error instanceof NmiError) {
    const headers: Record<string, string> = { ...error.headers };
    if (error.retryAfterSeconds !== undefined) headers["retry-after"] = String(error.retryAfterSeconds);
    return { status: error.statusCode, code: error.wireCode, body: error.toJSON(), headers };
  }
  if (error instanceof UpstreamRefusalError) {
    const body = error.body as { error?: unknown } | undefined;
    return { status: error.statusCode, code: typeof body?.error === "string" ? body.error : "upstream_refusal", body: error.body, headers: {} };
  }
  return {
    status: 500,
    code: NMI_ERROR_CODE.Internal,
    body: { error: NMI_ERROR_CODE.Internal, error_description: "NMI failed to answer this request; see NMI's logs" },
    headers: {},
  };
}

/** IMDS's token JSON: numbers as strings, plus `client_id` (docs/contract.md). */
export function tokenJson(token: AcquiredToken, nowMs: number): Record<string, string> {
  const expiresOn = Math.floor(token.expiresOnMs / 1000);
  return {
    access_token: token.accessToken,
    refresh_token: "",
    expires_in: String(Math.max(0, expiresOn - Math.floor(nowMs / 1000))),
    expires_on: String(expiresOn),
    not_before: String(Math.floor((token.notBeforeMs ?? nowMs) / 1000)),
    resource: token.resource,
    token_type: token.tokenType,
    client_id: token.clientId,
  };
}
