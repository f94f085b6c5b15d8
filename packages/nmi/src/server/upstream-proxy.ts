import type { IncomingMessage, ServerResponse } from "node:http";
import { fetchBuffer, type HttpAgent, type HttpResponse } from "../http-request";
import { NMI_ERROR_CODE, NmiError } from "../errors";
import { upstreamFailure } from "../token/upstream-error";
import { NMI_VERSION, NMI_VERSION_HEADER } from "../version";

export interface UpstreamProxyOptions {
  upstream: string;
  agent: HttpAgent;
  timeoutMs: number;
  connectTimeoutMs: number;
  maxBodyBytes: number;
  retryAfterSeconds: number;
}

/**
 * The request headers passed upstream: what IMDS reads (Metadata, and X-Forwarded-For, which IMDS refuses as its
 * own SSRF guard) and content negotiation. Anything else could change how upstream frames or reads the request.
 */
const FORWARDED_REQUEST_HEADERS = ["metadata", "accept", "content-type", "user-agent", "x-forwarded-for"] as const;

// RFC 9110 §7.6.1 connection-specific fields, plus what the HTTP client computes itself.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
  "content-length",
]);

async function readBounded(req: IncomingMessage, maxBytes: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers["content-length"] ?? 0);
  if (declared > maxBytes) throw new NmiError(413, NMI_ERROR_CODE.InvalidRequest, `request body over ${maxBytes} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new NmiError(413, NMI_ERROR_CODE.InvalidRequest, `request body over ${maxBytes} bytes`);
    chunks.push(chunk);
  }
  return size === 0 ? undefined : Buffer.concat(chunks);
}

/**
 * Passes a request to the upstream IMDS and its answer back (status, headers, body). Only ever to the configured
 * upstream, and only what the caller decided to pass (proxy-allowlist.ts): `pathAndQuery` is the canonical path the
 * request was classified on plus the query as sent, and it goes on the request line byte for byte — no URL
 * parsing in between that could read it differently (that gap was issue 12's token bypass). Bodies are bounded
 * both ways; unreachable or timed out → 503 podidentity_upstream_unavailable.
 */
export class UpstreamProxy {
  readonly #o: UpstreamProxyOptions;
  readonly #origin: URL;

  constructor(options: UpstreamProxyOptions) {
    this.#o = options;
    this.#origin = new URL(new URL(options.upstream).origin);
  }

  /** Returns the upstream status (for metrics); throws NmiError when upstream cannot be reached. */
  async forward(req: IncomingMessage, res: ServerResponse, pathAndQuery: string, signal?: AbortSignal): Promise<number> {
    // Only a POST (scheduled-event acknowledgements) carries a body upstream. A GET's body is dropped: Node's
    // client would send it without framing, and upstream would read it as the start of another request.
    const method = req.method ?? "GET";
    const body = method === "POST" ? await readBounded(req, this.#o.maxBodyBytes) : undefined;
    const headers: Record<string, string | string[]> = {};
    for (const name of FORWARDED_REQUEST_HEADERS) {
      const value = req.headers[name];
      if (value !== undefined) headers[name] = value;
    }
    if (method === "POST") headers["content-length"] = String(body?.length ?? 0);
    let upstream: HttpResponse;
    try {
      upstream = await fetchBuffer(this.#origin, {
        path: pathAndQuery.startsWith("/") ? pathAndQuery : `/${pathAndQuery}`,
        method,
        headers,
        ...(body !== undefined && { body }),
        agent: this.#o.agent,
        timeoutMs: this.#o.timeoutMs,
        connectTimeoutMs: this.#o.connectTimeoutMs,
        maxBodyBytes: this.#o.maxBodyBytes,
        ...(signal !== undefined && { signal }),
      });
    } catch (cause) {
      throw upstreamFailure("the upstream IMDS", undefined, undefined, this.#o.retryAfterSeconds, cause);
    }
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(upstream.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
    }
    out[NMI_VERSION_HEADER] = NMI_VERSION;
    let payload = upstream.body;
    if (upstream.status >= 400 && !isJsonError(payload)) {
      // An error without IMDS's JSON (an empty 400, an HTML page from something in between): the status is kept,
      // the body made IMDS-shaped, so a pod's client always finds `error`.
      payload = Buffer.from(
        JSON.stringify({ error: "upstream_error", error_description: `the node's IMDS answered ${upstream.status} without a JSON error body` }),
      );
      out["content-type"] = "application/json; charset=utf-8";
    }
    out["content-length"] = String(payload.length);
    if (!res.headersSent && !res.destroyed) {
      res.writeHead(upstream.status, out);
      res.end(payload);
    }
    return upstream.status;
  }
}

function isJsonError(body: Buffer): boolean {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { error?: unknown } | null;
    return typeof parsed === "object" && parsed !== null && typeof parsed.error === "string";
  } catch {
    return false;
  }
}
